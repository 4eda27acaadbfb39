//! `ringws doctor URL`: connect like a browser, check every step of the upgrade and of a short
//! WebSocket session, and when one fails, name the most likely cause and the fix.
//!
//! - `target.rs` parses the URL; `request.rs` builds the upgrade request;
//! - `probe.rs` does the socket work (blocking std sockets, a timeout on every step), with the
//!   protocol core's client handshake checks and client frame reader;
//! - `tls.rs` is the TLS step of a wss:// URL (rustls over the blocking socket, with the TLS
//!   client `ringws bench` uses too, `crate::tls::client`);
//! - `response.rs` keeps the answer's head and a refusal's body;
//! - `diagnose.rs` turns the first failure into a cause and a fix (pure, unit-tested);
//! - `identity.rs` reads what the server says the credentials grant (the 101's
//!   `RingWS-Identity`, which doctor asks for, or a 403 `topic_forbidden`'s reason);
//! - `report.rs` prints the steps or the JSON object.

mod deflate;
mod diagnose;
mod identity;
mod probe;
mod report;
mod request;
mod response;
mod target;
mod tls;

use std::time::Duration;

use crate::protocol::client_handshake::client_key;

pub use diagnose::{
    close_code_meaning, diagnose, ConnectFailure, Context, Diagnosis, Observation, EXIT_CONNECT,
    EXIT_HANDSHAKE, EXIT_OK, EXIT_USAGE, EXIT_WEBSOCKET,
};

/// Longest `--timeout` accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

const AFTER_HELP: &str = "\
Steps: resolve the host; connect; for wss://, the TLS handshake (the version, cipher suite, ALPN
and the certificate's subject, issuer, names and expiry are shown; the chain is checked against
the system's roots, or --ca-file); send the upgrade request (with --origin, --protocol, --token
and --header as given, permessage-deflate offered like a browser, and `RingWS-Explain:
identity`, which asks ringws for the subject and topic permissions it grants); verify the 101 answer
(Upgrade, Connection, Sec-WebSocket-Accept, the negotiated subprotocol and extensions, with
permessage-deflate's parameters judged as RFC 7692 says); when the server accepted
permessage-deflate, send one JSON message compressed and inflate the reply (an echo is compared;
no reply within 2 s passes: not every endpoint echoes); send a masked ping and time the pong;
close with 1000 and wait for the server's close and its TCP close.
With --token, an Identity line shows the subject and the subscribe and publish patterns the
server granted (RingWS-Identity on the 101), or says that the server did not report them; a 403
topic_forbidden names the topic and the patterns that do not cover it.
On a failure, doctor names the most likely cause and the fix.

Examples:
  ringws doctor ws://127.0.0.1:9001/
  ringws doctor wss://chat.example.com/ws --origin https://app.example.com --protocol chat.v1
  ringws doctor wss://127.0.0.1:9443/ --ca-file test-ca.pem
  ringws doctor ws://10.0.0.5:9001/ --token \"$TOKEN\" --token-in-query -v
  ringws doctor ws://127.0.0.1:9001/ --header 'Sec-WebSocket-Version: 8'   # a header replaced
  ringws doctor ws://127.0.0.1:9001/ --json | jq .cause

Exit codes:
  0  the endpoint upgraded, answered the ping and closed cleanly
  2  usage error or bad URL
  3  cannot connect: DNS failure, connection refused, timeout, unreachable
  4  connected, but the TLS handshake failed (certificate expired, not trusted, missing its
     intermediate or for another name; no common TLS version; plain HTTP on the port; ALPN
     without http/1.1), or the upgrade was refused or invalid (non-101, wrong
     Sec-WebSocket-Accept, a subprotocol or extension not offered, a permessage-deflate answer
     breaking RFC 7692, a TLS or non-HTTP port)
  5  upgraded, then the WebSocket misbehaved: closed after the 101 or after a compressed
     message, a compressed message that does not inflate, no pong, bad close

docs/troubleshooting.md explains each symptom and fix.";

/// Arguments of `ringws doctor`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct DoctorArgs {
    /// The endpoint: ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Send `Origin: ORIGIN`, as a browser does for the page that opens the WebSocket.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Offer a subprotocol in Sec-WebSocket-Protocol (repeat for several, in preference order).
    #[arg(long = "protocol", value_name = "NAME")]
    pub protocols: Vec<String>,
    /// Send an extra header; one named like a default header replaces it, and an empty value
    /// ('Connection:') removes it. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'", value_parser = request::parse_header_arg)]
    pub headers: Vec<(String, String)>,
    /// Send `Authorization: Bearer TOKEN`, and show the subject and topic permissions the server
    /// grants it (the Identity line).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Send the token as a `?token=` query parameter instead, as browsers must.
    #[arg(long, requires = "token")]
    pub token_in_query: bool,
    /// Offer no extensions (by default permessage-deflate is offered, as browsers do).
    #[arg(long)]
    pub no_extensions: bool,
    /// Time limit of each step (DNS, connect, the answer, the pong, the close): a number of
    /// seconds or a duration with a unit (2, 2.5, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// wss://: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,
    /// wss://: accept any certificate (the handshake is still checked); shows the certificate
    /// without judging it.
    #[arg(long)]
    pub insecure: bool,
    /// Print the request and response heads as sent and received (to stderr; tokens masked).
    #[arg(short, long)]
    pub verbose: bool,
    /// Print one JSON object on stdout instead of the report (url, ok, exit_code, steps, status,
    /// response_headers, cause, fix, pong_rtt_ms, identity: reported, subject, subscribe,
    /// publish, truncated or forbidden_topic, and for wss:// tls: version, cipher_suite, alpn,
    /// certificate).
    #[arg(long)]
    pub json: bool,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = crate::config::parse_duration_arg(text)?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(format!("{text:?} is out of range: from 1ms to 1h"));
    }
    Ok(timeout)
}

/// Runs `ringws doctor`; returns the exit code.
pub fn run(args: DoctorArgs) -> i32 {
    let target = match target::parse(&args.url) {
        Ok(target) => target,
        Err(err) => {
            eprintln!("ringws doctor: {err}");
            return EXIT_USAGE;
        }
    };
    let tls = match target.scheme {
        target::Scheme::Wss => {
            match tls::TlsPlan::new(&target.host, args.ca_file.as_deref(), args.insecure) {
                Ok(plan) => Some(plan),
                Err(err) => {
                    eprintln!("ringws doctor: {err}");
                    return EXIT_USAGE;
                }
            }
        }
        target::Scheme::Ws if args.ca_file.is_some() || args.insecure => {
            eprintln!("ringws doctor: --ca-file and --insecure apply to wss:// URLs only");
            return EXIT_USAGE;
        }
        target::Scheme::Ws => None,
    };
    let key = client_key(crate::sys::process::random_bytes());
    let request = request::build(&request::RequestSpec {
        target: &target.target,
        host_header: &target.host_header,
        key: std::str::from_utf8(&key).expect("base64 is ASCII"),
        origin: args.origin.as_deref(),
        protocols: &args.protocols,
        extensions: (!args.no_extensions).then_some(request::BROWSER_EXTENSIONS),
        token: args.token.as_deref(),
        token_in_query: args.token_in_query,
        extra_headers: &args.headers,
    });
    let context = Context {
        tls_url: target.scheme == target::Scheme::Wss,
        authority: target.authority(),
        target: target.target.clone(),
        origin: request.header("Origin").map(str::to_owned),
        token_sent: args.token.is_some() || request.header("Authorization").is_some(),
        offered_protocols: request.offered_protocols(),
        overridden_headers: args
            .headers
            .iter()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect(),
        timeout_ms: args.timeout.as_millis() as u64,
    };

    let token = args.token.as_deref();
    let mut print_head = |head: probe::Head, bytes: &[u8]| {
        if !args.verbose {
            return;
        }
        let marker = match head {
            probe::Head::Request => "> ",
            probe::Head::Response => "< ",
        };
        let text = redact(&String::from_utf8_lossy(bytes), token);
        for line in text.trim_end_matches("\r\n").split("\r\n") {
            eprintln!("{marker}{line}");
        }
        eprintln!();
    };
    let plan = probe::Plan {
        target: &target,
        request: &request,
        timeout: args.timeout,
        tls: tls.as_ref(),
    };
    let outcome = probe::run(&plan, &mut print_head);

    let diagnosis = outcome.failure.as_ref().map(|o| diagnose(&context, o));
    let exit_code = outcome
        .failure
        .as_ref()
        .map_or(EXIT_OK, Observation::exit_code);
    let identity = identity::read(&outcome, context.token_sent);
    if args.json {
        let value = report::json(
            &args.url,
            &outcome,
            diagnosis.as_ref(),
            identity.as_ref(),
            exit_code,
        );
        println!("{value:#}");
    } else {
        print!(
            "{}",
            report::human(&args.url, &outcome, diagnosis.as_ref(), identity.as_ref())
        );
    }
    exit_code
}

/// `text` with the token (raw and as sent in a query) masked.
fn redact(text: &str, token: Option<&str>) -> String {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return text.to_owned();
    };
    let masked = format!("<token, {} bytes>", token.len());
    let encoded = request::build(&request::RequestSpec {
        target: "/",
        token: Some(token),
        token_in_query: true,
        ..request::RequestSpec::default()
    })
    .target
    .trim_start_matches("/?token=")
    .to_owned();
    text.replace(token, &masked).replace(&encoded, &masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_with_units_and_bounds() {
        assert_eq!(parse_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("2h").is_err());
        assert!(parse_timeout("soon").is_err());
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn tokens_are_masked_in_printed_heads() {
        let head = "GET /?token=a%2Bb HTTP/1.1\r\nAuthorization: Bearer a+b\r\n";
        let shown = redact(head, Some("a+b"));
        assert!(
            !shown.contains("a+b") && !shown.contains("a%2Bb"),
            "{shown}"
        );
        assert!(shown.contains("Bearer <token, 3 bytes>"));
        assert_eq!(redact(head, None), head);
    }
}
