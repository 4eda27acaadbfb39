//! `--log-format json`: every line ringws writes to stderr is one JSON object with the same
//! field names, for log shippers.

mod common;
use common::{exchange, upgrade_request, ServerProcess};

#[test]
fn json_logs_are_one_object_per_line_with_stable_fields() {
    let server = ServerProcess::start(&["--log-format", "json", "--cores", "1"]);
    // A refused handshake (a plain HTTP request) is logged with the client and the reason.
    let request = upgrade_request("/").replace("Upgrade: websocket\r\n", "");
    let answer = exchange(server.addr, request.as_bytes());
    assert_eq!(answer.status, 400, "{}", answer.body);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} missing from {line}");
        }
        assert!(
            line.get("fields").is_none() && line.get("spans").is_none(),
            "{line}"
        );
    }
    let refused = lines
        .iter()
        .find(|line| line["target"] == "ringws::handshake")
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert_eq!(refused["level"], "INFO", "{refused}");
    assert_eq!(refused["client"], "127.0.0.1", "{refused}");
    assert_eq!(refused["reason"], "missing_upgrade", "{refused}");
    assert_eq!(refused["status"], 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("handshake refused: "),
        "{refused}"
    );
}

#[test]
fn an_unknown_log_format_is_refused_with_the_formats() {
    common::refused_start(
        &["--log-format", "xml"],
        &[],
        2,
        &["--log-format: \"xml\" is not a log format (available: text, json)"],
    );
}
