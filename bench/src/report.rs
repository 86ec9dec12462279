//! The results: one [`Measurement`] per figure, judged against its [`Target`], printed as a
//! table and written as `results.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Map, Value};

/// What a figure has to reach to pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `value / baseline value` must be at least this.
    RatioAtLeast(f64),
    /// The value itself must stay below this (in the row's unit).
    Below(f64),
    /// For times: `baseline value / value` (how many times faster) must be at least this;
    /// the row's ratio is that quotient.
    FasterAtLeast(f64),
}

impl Target {
    fn describe(self, unit: &str) -> String {
        match self {
            Target::RatioAtLeast(r) => format!(">= {r} x baseline"),
            Target::Below(v) => format!("< {v} {}", short_unit(unit)),
            Target::FasterAtLeast(r) => format!(">= {r} x faster than baseline"),
        }
    }
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "seconds" => "s",
        other => other,
    }
}

/// One row of the results.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The row this one is compared against, by name.
    pub baseline: Option<String>,
    /// `value / baseline value`; `baseline value / value` under [`Target::FasterAtLeast`].
    pub ratio: Option<f64>,
    pub target: Option<String>,
    pub pass: Option<bool>,
}

/// The rows of one run plus what describes the run (machine, parameters).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub parameters: Map<String, Value>,
    pub rows: Vec<Measurement>,
}

impl Report {
    /// Adds a row with no baseline and no target.
    pub fn record(&mut self, name: &str, value: f64, unit: &str) {
        self.rows.push(Measurement {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            baseline: None,
            ratio: None,
            target: None,
            pass: None,
        });
    }

    /// Adds a row compared with the earlier row `baseline`; `target`, if any, is judged
    /// on the ratio or on the value.
    pub fn record_against(
        &mut self,
        name: &str,
        value: f64,
        unit: &str,
        baseline: Option<&str>,
        target: Option<Target>,
    ) {
        let faster = matches!(target, Some(Target::FasterAtLeast(_)));
        let ratio = baseline
            .and_then(|b| self.value(b))
            .filter(|b| *b > 0.0 && (!faster || value > 0.0))
            .map(|b| if faster { b / value } else { value / b });
        let pass = target.and_then(|t| match t {
            Target::RatioAtLeast(min) | Target::FasterAtLeast(min) => ratio.map(|r| r >= min),
            Target::Below(max) => Some(value < max),
        });
        self.rows.push(Measurement {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            baseline: baseline.map(str::to_string),
            ratio,
            target: target.map(|t| t.describe(unit)),
            pass,
        });
    }

    /// Records a run parameter (sizes, message shape, digests).
    pub fn parameter(&mut self, name: &str, value: impl Into<Value>) {
        self.parameters.insert(name.to_string(), value.into());
    }

    /// The value of the row called `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name).map(|r| r.value)
    }

    /// Rows whose target was missed.
    pub fn missed(&self) -> Vec<&Measurement> {
        self.rows.iter().filter(|r| r.pass == Some(false)).collect()
    }

    /// The results file's content.
    pub fn to_json(&self) -> Value {
        let scenarios: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "value": r.value,
                    "unit": r.unit,
                    "baseline": r.baseline,
                    "ratio": r.ratio,
                    "target": r.target,
                    "pass": r.pass,
                })
            })
            .collect();
        json!({
            "machine": machine(),
            "parameters": self.parameters,
            "scenarios": scenarios,
        })
    }

    /// Writes [`Report::to_json`] to `path`, pretty-printed.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// A plain-text table of every row.
    pub fn table(&self) -> String {
        let header = [
            "scenario", "value", "unit", "baseline", "ratio", "target", "pass",
        ];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    format_value(r.value),
                    r.unit.clone(),
                    r.baseline.clone().unwrap_or_else(|| "-".into()),
                    r.ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}")),
                    r.target.clone().unwrap_or_else(|| "-".into()),
                    match r.pass {
                        Some(true) => "PASS".into(),
                        Some(false) => "MISS".into(),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    // Numbers read best right-aligned.
                    if i == 1 || i == 4 {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(&header.map(String::from));
        line(&widths.map(|w| "-".repeat(w)));
        for row in &cells {
            line(row);
        }
        out
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Cores, operating system and date of the run.
pub fn machine() -> Value {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let distro = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_string());
    let os = match (distro, kernel) {
        (Some(d), Some(k)) => format!("{d} (Linux {k}, {})", std::env::consts::ARCH),
        (Some(d), None) => format!("{d} ({})", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    };
    json!({
        "cores": cores,
        "os": os,
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_targets_judge_against_the_baseline() {
        let mut report = Report::default();
        report.record("raw", 1000.0, "messages/s");
        report.record_against(
            "real",
            400.0,
            "events/s",
            Some("raw"),
            Some(Target::RatioAtLeast(0.5)),
        );
        let row = &report.rows[1];
        assert_eq!(row.ratio, Some(0.4));
        assert_eq!(row.pass, Some(false));
        assert_eq!(report.missed().len(), 1);
    }

    #[test]
    fn speed_up_targets_divide_the_baseline_by_the_value() {
        let mut report = Report::default();
        report.record("peer_seconds", 20.0, "seconds");
        report.record_against(
            "ours_seconds",
            0.5,
            "seconds",
            Some("peer_seconds"),
            Some(Target::FasterAtLeast(10.0)),
        );
        let row = &report.rows[1];
        assert_eq!(row.ratio, Some(40.0));
        assert_eq!(row.pass, Some(true));
        assert_eq!(row.target.as_deref(), Some(">= 10 x faster than baseline"));
    }

    #[test]
    fn value_targets_ignore_the_baseline() {
        let mut report = Report::default();
        report.record_against("p99", 3.0, "ms", None, Some(Target::Below(5.0)));
        assert_eq!(report.rows[0].pass, Some(true));
        assert_eq!(report.rows[0].target.as_deref(), Some("< 5 ms"));
        let json = report.to_json();
        assert_eq!(json["scenarios"][0]["ratio"], Value::Null);
        assert!(json["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
    }
}
