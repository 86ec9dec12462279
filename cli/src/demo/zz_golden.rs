use super::*;
use sha2::{Digest, Sha256};
#[test]
fn zz_golden_dump() {
    let mut out = String::new();
    for (u, g, a, s, d) in [
        (0usize, 0usize, 0usize, 1u64, "contoso.com"),
        (1, 1, 1, 2, "contoso.com"),
        (14, 16, 0, 4, "x.org"),
        (300, 20, 5, 7, "contoso.com"),
        (6_000, 120, 40, 11, "contoso.com"),
        (70_000, 45, 1, 3, "fabrikam.com"),
    ] {
        let opts = DemoOptions { users: u, groups: g, apps: a, seed: s, domain: d.into() };
        let mut h = Sha256::new();
        let mut n = 0;
        for v in demo_objects(&opts) {
            h.update(serde_json::to_string(&v).unwrap().as_bytes());
            h.update(b"\n");
            n += 1;
        }
        out.push_str(&format!("{opts:?} {n} {} {}\n", opts.total_objects(), hex::encode(h.finalize())));
    }
    for o in [DemoOptions::default(), DemoOptions::for_users(1_000_000, 42, "big.example")] {
        out.push_str(&format!("{o:?} {}\n", o.total_objects()));
    }
    std::fs::write(std::env::var("GOLDEN_OUT").unwrap(), out).unwrap();
}
