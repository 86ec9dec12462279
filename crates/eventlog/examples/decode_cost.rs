#![allow(clippy::unwrap_used)]
use std::time::Instant;

use backtrack_domain::event::{Change, Event, EventMeta};
use serde_json::json;

fn main() {
    let event = Event { meta: EventMeta { event_id: "0190a0b0-0000-7000-8000-000000000001".into(), tenant: "bench".into(), kind: "user".into(), object_id: "00000000-0000-4000-8000-000000000001".into(), actor: "a".into(), time_ms: 1, source: "s".into(), correlation_id: None, mutation_id: "m1".into() },
        change: Change::Created { attributes: json!({"displayName": "Enrico Aziz", "userPrincipalName": "enrico.aziz186@contoso.com", "department": "Human Resources", "jobTitle": "HR Business Partner", "accountEnabled": true, "city": "Tokyo", "country": "Japan", "businessPhones": ["+81 3 5555 9911"], "companyName": "Contoso", "employeeId": "E0000187", "givenName": "Enrico", "mail": "enrico.aziz186@contoso.com", "mailNickname": "enrico.aziz186", "officeLocation": "Tokyo/32-1938", "onPremisesSyncEnabled": true, "preferredLanguage": "ja-JP", "surname": "Aziz", "usageLocation": "JP", "userType": "Member"}).as_object().cloned().unwrap(), links: vec![] } };
    let encoded = backtrack_eventlog::codec::encode(&event).unwrap();
    let subject = event.subject();
    let n = 200_000;
    let started = Instant::now();
    for _ in 0..n {
        let e = backtrack_eventlog::codec::decode_stored(&subject, &encoded.payload).unwrap();
        std::hint::black_box(e);
    }
    let el = started.elapsed();
    println!(
        "payload {} bytes; {:.2} µs per decode",
        encoded.payload.len(),
        el.as_secs_f64() * 1e6 / n as f64
    );
}
