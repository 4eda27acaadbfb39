//! The kinds of value a setting holds: how each is read from a flag or the config file, checked
//! against its bounds, and written back for `--print-config` so that the output reads back the
//! same.

use std::fmt;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum as _;
use toml::Value;

use super::error::{DurationError, SizeError, ValueError};
use super::{AppKind, LogFormat};
use crate::policy::subprotocol;
use crate::policy::{AuthMode, Cidr, DefaultPermissions, OriginPattern};

/// Longest timeout of any kind; timers stay far from any overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest size text [`parse_size`] looks at; anything longer is refused unread.
pub const MAX_SIZE_TEXT_LEN: usize = 32;

/// A setting's value as written: flag text, or any TOML value with where it sits in the file.
/// The repeated flags of a list key arrive as one array.
#[derive(Clone, Debug, PartialEq)]
pub struct RawValue {
    pub(super) value: Value,
    /// Byte range in the config file; `None` for flags and fields.
    pub(super) span: Option<Range<usize>>,
}

impl RawValue {
    /// A value that stands nowhere in a file: a flag, or a field of a `Config` built in code.
    pub(super) fn unplaced(value: Value) -> Self {
        RawValue { value, span: None }
    }

    /// The entries of a list key: an array's items, or the one value standing for a list of one.
    /// Each entry is placed where the whole value is.
    fn entries(&self) -> Vec<RawValue> {
        match &self.value {
            Value::Array(items) => items
                .iter()
                .map(|value| RawValue {
                    value: value.clone(),
                    span: self.span.clone(),
                })
                .collect(),
            _ => vec![self.clone()],
        }
    }

    fn is_text(&self, words: &[&str]) -> bool {
        matches!(&self.value, Value::String(text) if words.contains(&text.trim()))
    }
}

impl From<String> for RawValue {
    fn from(text: String) -> Self {
        RawValue::unplaced(Value::String(text))
    }
}

impl From<&str> for RawValue {
    fn from(text: &str) -> Self {
        RawValue::from(text.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<Value>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(RawValue {
            value: spanned.into_inner(),
            span: Some(span),
        })
    }
}

impl fmt::Display for RawValue {
    /// As TOML: strings quoted, numbers bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::String(text) => write!(f, "{text:?}"),
            other => write!(f, "{other}"),
        }
    }
}

type Parse<T> = Box<dyn Fn(&RawValue) -> Result<T, ValueError> + Send + Sync>;
type Print<T> = Box<dyn Fn(&T) -> Value + Send + Sync>;

/// How the values of one key are read, bounded and written back. Whatever `print` writes,
/// `parse` reads back to the same value.
pub(crate) struct Kind<T> {
    pub(super) parse: Parse<T>,
    pub(super) print: Print<T>,
    /// Repeated flags and TOML arrays make one list.
    pub(super) list: bool,
    /// What the flag given alone means (`--takeover` for `--takeover true`); `None` when the
    /// flag needs a value.
    pub(super) bare_flag: Option<&'static str>,
}

impl<T> Kind<T> {
    fn new(
        parse: impl Fn(&RawValue) -> Result<T, ValueError> + Send + Sync + 'static,
        print: impl Fn(&T) -> Value + Send + Sync + 'static,
    ) -> Self {
        Kind {
            parse: Box::new(parse),
            print: Box::new(print),
            list: false,
            bare_flag: None,
        }
    }
}

/// A socket address such as `127.0.0.1:9001` or `[::1]:9001`.
pub(crate) fn address() -> Kind<SocketAddr> {
    Kind::new(
        |raw| {
            let text = text_of(raw, "an address such as \"127.0.0.1:9001\"")?;
            text.trim().parse().map_err(|_| ValueError::NotAnAddress {
                value: raw.to_string(),
            })
        },
        |addr: &SocketAddr| Value::String(addr.to_string()),
    )
}

/// A value of `kind`, or "off" for none.
pub(crate) fn optional<T: 'static>(kind: Kind<T>) -> Kind<Option<T>> {
    off_or(&["off"], kind)
}

/// A timeout that "off" (or "0s") switches off.
pub(crate) fn optional_timeout() -> Kind<Option<Duration>> {
    off_or(&["off", "0s", "0"], timeout())
}

fn off_or<T: 'static>(off: &'static [&'static str], kind: Kind<T>) -> Kind<Option<T>> {
    let Kind { parse, print, .. } = kind;
    Kind::new(
        move |raw| {
            if raw.is_text(off) {
                Ok(None)
            } else {
                parse(raw).map(Some)
            }
        },
        move |value| match value {
            Some(value) => print(value),
            None => Value::String("off".into()),
        },
    )
}

/// Text that must not be empty; only ever used through [`optional`], which reads "off".
pub(crate) fn text() -> Kind<String> {
    Kind::new(
        |raw| match text_of(raw, "a string, or \"off\"")?.trim() {
            "" => Err(ValueError::Empty {
                value: raw.to_string(),
            }),
            value => Ok(value.to_owned()),
        },
        |text| Value::String(text.clone()),
    )
}

/// A file name; only ever used through [`optional`], which reads "off".
pub(crate) fn path() -> Kind<PathBuf> {
    let Kind { parse, .. } = text();
    Kind::new(
        move |raw| parse(raw).map(PathBuf::from),
        |path| Value::String(path.display().to_string()),
    )
}

/// One of the built-in apps, by name.
pub(crate) fn app() -> Kind<AppKind> {
    let choices = AppKind::value_variants().iter().map(|&app| {
        let name = app
            .to_possible_value()
            .map(|value| value.get_name().to_owned());
        (name.unwrap_or_default(), app)
    });
    one_of(
        "an app name such as \"echo\"",
        choices.collect(),
        |value, available| ValueError::NotAnApp { value, available },
    )
}

/// An auth mode, by name.
pub(crate) fn auth() -> Kind<AuthMode> {
    named(
        "an auth mode such as \"token\"",
        AuthMode::ALL.map(|mode| (mode.name(), mode)),
        |value, available| ValueError::NotAnAuthMode { value, available },
    )
}

/// `topic_permissions_default`: allow or deny.
pub(crate) fn topic_permissions_default() -> Kind<DefaultPermissions> {
    named(
        "allow or deny",
        DefaultPermissions::ALL.map(|choice| (choice.name(), choice)),
        |value, available| ValueError::NotAPermissionDefault { value, available },
    )
}

/// A log line format, by name.
pub(crate) fn log_format() -> Kind<LogFormat> {
    named(
        "a log format such as \"json\"",
        LogFormat::ALL.map(|format| (format.name(), format)),
        |value, available| ValueError::NotALogFormat { value, available },
    )
}

/// [`one_of`] for a fixed list of named choices.
fn named<T: Copy + PartialEq + Send + Sync + 'static, const N: usize>(
    expected: &'static str,
    choices: [(&'static str, T); N],
    refused: fn(String, String) -> ValueError,
) -> Kind<T> {
    let choices = choices.map(|(name, choice)| (name.to_owned(), choice));
    one_of(expected, choices.into(), refused)
}

/// One of `choices`, by its name in any case. A refusal quotes the value as written and lists
/// the names.
fn one_of<T: Copy + PartialEq + Send + Sync + 'static>(
    expected: &'static str,
    choices: Vec<(String, T)>,
    refused: fn(String, String) -> ValueError,
) -> Kind<T> {
    let names = choices.clone();
    Kind::new(
        move |raw| {
            let text = text_of(raw, expected)?.trim();
            let chosen = choices
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(text));
            chosen.map(|&(_, choice)| choice).ok_or_else(|| {
                let available: Vec<&str> = choices.iter().map(|(name, _)| name.as_str()).collect();
                refused(raw.to_string(), available.join(", "))
            })
        },
        move |value| {
            let name = names.iter().find(|(_, choice)| choice == value);
            Value::String(name.map(|(name, _)| name.clone()).unwrap_or_default())
        },
    )
}

/// The words every boolean key reads, in flags and in the config file alike (a TOML `true` or
/// `false` works too); any case.
pub const BOOLEAN_WORDS: [(&str, bool); 4] = [
    ("true", true),
    ("false", false),
    ("on", true),
    ("off", false),
];

/// A switch: `true`, `false`, `on` or `off` ([`BOOLEAN_WORDS`]), as text or a TOML boolean.
/// Printed as a TOML boolean. The flag alone means `true`.
pub(crate) fn boolean() -> Kind<bool> {
    let mut kind = Kind::new(
        |raw| match &raw.value {
            Value::Boolean(b) => Ok(*b),
            Value::String(text) => BOOLEAN_WORDS
                .iter()
                .find(|(word, _)| word.eq_ignore_ascii_case(text.trim()))
                .map(|&(_, b)| b)
                .ok_or_else(|| ValueError::NotABool {
                    value: raw.to_string(),
                }),
            other => Err(ValueError::WrongType {
                expected: "true, false, on or off",
                found: describe(other),
            }),
        },
        |&b| Value::Boolean(b),
    );
    kind.bare_flag = Some("true");
    kind
}

/// A filter in tracing's EnvFilter syntax ([`check_log_filter`]).
pub(crate) fn log_filter() -> Kind<String> {
    checked_text(
        "a log filter such as \"info\"",
        |filter| check_log_filter(filter).map(|()| filter.to_owned()),
        |value, reason| ValueError::NotALogFilter { value, reason },
    )
}

/// The levels a log filter names.
pub const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks a filter in tracing's EnvFilter syntax: comma-separated directives, each a level
/// (`info`), `target=level` (`ringws::handshake=debug`) or a span filter (`[conn]=trace`).
///
/// EnvFilter itself reads any other bare word as a target enabled at every level, so a
/// misspelt level (`verbose`) silently turns every other log line off: a bare word must be a
/// level, or a ringws target (`ringws::reactor`, all of its levels).
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|err| err.to_string())?;
    let bare_words = filter
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !directive.contains(['=', '[']));
    for word in bare_words {
        let level = LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word));
        let ringws_target = word == "ringws" || word.starts_with("ringws::");
        if !level && !ringws_target {
            return Err(format!(
                "unknown level {word:?}: the levels are {}; one target's level is written \
                 target=level",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// An entry of `allowed_origins`.
pub(crate) fn origin() -> Kind<OriginPattern> {
    checked_text(
        "an origin such as \"https://app.example.com\"",
        str::parse,
        |value, reason| ValueError::NotAnOrigin { value, reason },
    )
}

/// An entry of `subprotocols`.
pub(crate) fn subprotocol() -> Kind<String> {
    checked_text(
        "a subprotocol name such as \"chat.v1\"",
        |name| subprotocol::check_name(name.trim()).map(|()| name.trim().to_owned()),
        |value, reason| ValueError::NotASubprotocol { value, reason },
    )
}

/// An entry of `trusted_proxies`.
pub(crate) fn cidr() -> Kind<Cidr> {
    checked_text(
        "an address or CIDR block such as \"10.0.0.0/8\"",
        str::parse,
        |value, reason| ValueError::NotACidr { value, reason },
    )
}

/// The pub/sub bus: `local` or a `redis://` URL.
pub(crate) fn bus_address() -> Kind<crate::app::pubsub::bus::BusAddress> {
    checked_text(
        "\"local\" or a Redis URL such as \"redis://127.0.0.1:6379/\"",
        str::parse,
        |value, reason| ValueError::NotABus { value, reason },
    )
}

/// An entry of `tls_sni_certs`: `CERT_FILE:KEY_FILE`.
pub(crate) fn cert_key_pair() -> Kind<crate::tls::CertKeyPair> {
    checked_text("CERT_FILE:KEY_FILE", str::parse, |value, reason| {
        ValueError::NotACertKeyPair { value, reason }
    })
}

/// Text that `read` accepts, printed as it displays. A refusal quotes the value as written and
/// gives `read`'s reason.
fn checked_text<T: fmt::Display + 'static, E: fmt::Display + 'static>(
    expected: &'static str,
    read: fn(&str) -> Result<T, E>,
    refused: fn(String, String) -> ValueError,
) -> Kind<T> {
    Kind::new(
        move |raw| {
            read(text_of(raw, expected)?).map_err(|err| refused(raw.to_string(), err.to_string()))
        },
        |value: &T| Value::String(value.to_string()),
    )
}

/// At most `max_len` distinct entries of `entry`: repeated flags, a TOML array, or one value.
pub(crate) fn list<T: PartialEq + 'static>(max_len: usize, entry: Kind<T>) -> Kind<Vec<T>> {
    let Kind { parse, print, .. } = entry;
    let mut kind = Kind::new(
        move |raw| {
            let entries = raw.entries();
            if entries.len() > max_len {
                return Err(ValueError::TooMany { max: max_len });
            }
            let mut parsed = Vec::with_capacity(entries.len());
            for entry in &entries {
                let value = parse(entry)?;
                if parsed.contains(&value) {
                    return Err(ValueError::Duplicate {
                        value: entry.to_string(),
                    });
                }
                parsed.push(value);
            }
            Ok(parsed)
        },
        move |values| Value::Array(values.iter().map(&print).collect()),
    );
    kind.list = true;
    kind
}

/// A byte size within `bytes`, written `16MiB` or as a number of bytes.
pub(crate) fn size<T>(bytes: RangeInclusive<u64>) -> Kind<T>
where
    T: TryFrom<u64> + TryInto<u64> + Copy + 'static,
{
    Kind::new(
        move |raw| {
            let value = match &raw.value {
                Value::Integer(n) => u64::try_from(*n).ok(),
                Value::String(text) => match parse_size(text) {
                    Ok(value) => Some(value),
                    Err(SizeError::TooLarge) => None,
                    Err(SizeError::Malformed) => {
                        return Err(ValueError::NotASize {
                            value: raw.to_string(),
                        })
                    }
                },
                other => {
                    return Err(ValueError::WrongType {
                        expected: "a size such as \"16MiB\" or a number of bytes",
                        found: describe(other),
                    })
                }
            };
            let in_range = value.filter(|value| bytes.contains(value));
            in_range
                .and_then(|value| T::try_from(value).ok())
                .ok_or_else(|| out_of_range(raw, expected_range(&bytes, format_size)))
        },
        |&value: &T| Value::String(format_size(value.try_into().unwrap_or(u64::MAX))),
    )
}

/// A whole number within `range`.
pub(crate) fn count<T>(range: RangeInclusive<u64>) -> Kind<T>
where
    T: TryFrom<u64> + TryInto<i64> + Copy + 'static,
{
    let expected = expected_range(&range, |n| n.to_string());
    number(move |n| range.contains(&n), expected)
}

/// A power of two within `range` (io_uring's ring sizes).
pub(crate) fn power_of_two<T>(range: RangeInclusive<u64>) -> Kind<T>
where
    T: TryFrom<u64> + TryInto<i64> + Copy + 'static,
{
    let expected = format!(
        "a power of two between {} and {}",
        range.start(),
        range.end()
    );
    number(move |n| range.contains(&n) && n.is_power_of_two(), expected)
}

/// A number of reactor threads: at least one, at most the CPUs this process may run on.
pub(crate) fn cores() -> Kind<usize> {
    let available = super::available_cores();
    let Kind { parse, .. } = number::<usize>(
        move |n| (1..=available as u64).contains(&n),
        format!("between 1 and {available}, the number of CPUs available to ringws, or \"all\""),
    );
    Kind::new(
        move |raw| {
            if raw.is_text(&["all"]) {
                Ok(available)
            } else {
                parse(raw)
            }
        },
        // "all" rather than this machine's count, so that a printed config moves to another.
        move |&n| {
            if n == available {
                Value::String("all".into())
            } else {
                print_count(&n)
            }
        },
    )
}

/// A whole number that `accept` takes; a refusal says what was `expected`.
fn number<T>(accept: impl Fn(u64) -> bool + Send + Sync + 'static, expected: String) -> Kind<T>
where
    T: TryFrom<u64> + TryInto<i64> + Copy + 'static,
{
    Kind::new(
        move |raw| {
            let n = whole_number(raw)?;
            Some(n)
                .filter(|&n| accept(n))
                .and_then(|n| T::try_from(n).ok())
                .ok_or_else(|| out_of_range(raw, expected.clone()))
        },
        print_count,
    )
}

fn print_count<T: TryInto<i64> + Copy>(&n: &T) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

/// A duration (a number of seconds, or with a unit), more than zero and at most
/// [`MAX_TIMEOUT`]. A TOML number is a number of seconds, as a bare number is on the command line.
pub(crate) fn timeout() -> Kind<Duration> {
    duration_up_to_max(false)
}

/// A duration as [`timeout`] reads it, where 0 is allowed (a delay that can be none).
pub(crate) fn delay() -> Kind<Duration> {
    duration_up_to_max(true)
}

fn duration_up_to_max(zero_allowed: bool) -> Kind<Duration> {
    Kind::new(
        move |raw| {
            let text = match &raw.value {
                Value::Integer(n) => n.to_string(),
                Value::Float(x) => x.to_string(),
                _ => text_of(raw, "a duration such as \"10s\" or a number of seconds")?.to_owned(),
            };
            let duration = parse_duration(&text).map_err(|_| ValueError::NotADuration {
                value: raw.to_string(),
            })?;
            if (duration.is_zero() && !zero_allowed) || duration > MAX_TIMEOUT {
                let least = if zero_allowed {
                    "0 or more"
                } else {
                    "more than 0"
                };
                let expected = format!("{least} and at most {}", format_duration(MAX_TIMEOUT));
                return Err(out_of_range(raw, expected));
            }
            Ok(duration)
        },
        |&duration| Value::String(format_duration(duration)),
    )
}

fn out_of_range(raw: &RawValue, expected: String) -> ValueError {
    ValueError::OutOfRange {
        value: raw.to_string(),
        expected,
    }
}

/// "between A and B", or "at least A" for a range without a real upper bound.
fn expected_range(range: &RangeInclusive<u64>, render: fn(u64) -> String) -> String {
    if *range.end() == u64::MAX {
        format!("at least {}", render(*range.start()))
    } else {
        format!(
            "between {} and {}",
            render(*range.start()),
            render(*range.end())
        )
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Table(_) => "a table".into(),
        Value::Array(_) => "an array".into(),
        other => format!("a {} ({other})", other.type_str()),
    }
}

fn text_of<'a>(raw: &'a RawValue, expected: &'static str) -> Result<&'a str, ValueError> {
    match &raw.value {
        Value::String(text) => Ok(text),
        other => Err(ValueError::WrongType {
            expected,
            found: describe(other),
        }),
    }
}

fn whole_number(raw: &RawValue) -> Result<u64, ValueError> {
    match &raw.value {
        Value::Integer(n) => u64::try_from(*n).map_err(|_| ValueError::OutOfRange {
            value: raw.to_string(),
            expected: "a number of at least 0".into(),
        }),
        Value::String(text) => parse_digits(text.trim()).ok_or_else(|| ValueError::NotANumber {
            value: raw.to_string(),
        }),
        other => Err(ValueError::WrongType {
            expected: "a whole number",
            found: describe(other),
        }),
    }
}

const SIZE_UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// Parses a byte size: `512`, `8KiB`, `16MiB`, `1GiB`, `1TiB` (binary), `1KB`, `1MB`, `1GB`,
/// `1TB` (decimal), `1_000_000`. Units ignore case and may follow a space; no fractions.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    if text.len() > MAX_SIZE_TEXT_LEN {
        return Err(SizeError::Malformed);
    }
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number = parse_digits(number).ok_or(SizeError::Malformed)?;
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| unit.eq_ignore_ascii_case(name))
            .map(|&(_, multiplier)| multiplier)
            .ok_or(SizeError::Malformed)?
    };
    number.checked_mul(multiplier).ok_or(SizeError::TooLarge)
}

/// Decimal digits with optional `_` separators between them (as TOML allows).
fn parse_digits(text: &str) -> Option<u64> {
    let well_formed = !text.is_empty()
        && !text.starts_with('_')
        && !text.ends_with('_')
        && !text.contains("__")
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// Renders a byte size the way [`parse_size`] reads it, in the largest exact unit:
/// `16MiB`, `8KiB`, `1MB`, `1000001`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 8] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    if bytes == 0 {
        return "0".into();
    }
    UNITS
        .iter()
        .find(|&&(_, unit)| bytes % unit == 0)
        .map(|&(name, unit)| format!("{}{name}", bytes / unit))
        .unwrap_or_else(|| bytes.to_string())
}

/// Parses a duration: a bare number of seconds (`10`, `2.5`) or a duration with units such as
/// `10s`, `500ms`, `1m 30s`, `2h` (humantime syntax). The one rule of every duration the
/// command line and the config file take (`serve`, `bench`, `doctor`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(seconds) = text.parse::<f64>() {
            return Duration::try_from_secs_f64(seconds)
                .map_err(|_| DurationError(format!("{text:?} is too many seconds")));
        }
    }
    humantime::parse_duration(text).map_err(|err| DurationError(err.to_string()))
}

/// [`parse_duration`] for a clap `value_parser`: the message names the text and the rule.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|err| format!("{text:?} is {err}"))
}

/// Renders a duration the way [`parse_duration`] reads it: `10s`, `500ms`, `1m 30s`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("16 mib"), Ok(16 << 20));
        assert_eq!(parse_size(" 1_000_000 "), Ok(1_000_000));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for text in [
            "",
            "MiB",
            "12XB",
            "1.5MiB",
            "-1",
            "1 2",
            "16MiBs",
            "_1",
            "1_",
            "1__0",
            "1K",
            "0x10",
            "16 MiB extra",
            "１２",
        ] {
            assert_eq!(parse_size(text), Err(SizeError::Malformed), "{text:?}");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err(SizeError::Malformed)
        );
        assert_eq!(parse_size("16777216TiB"), Err(SizeError::TooLarge));
        assert_eq!(
            parse_size(&"1".repeat(MAX_SIZE_TEXT_LEN + 1)),
            Err(SizeError::Malformed)
        );
    }

    #[test]
    fn sizes_render_in_the_largest_exact_unit() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(125), "125");
        assert_eq!(format_size(8 << 10), "8KiB");
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(1 << 40), "1TiB");
        assert_eq!(format_size(1_000_000), "1MB");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(1_000_001), "1000001");
    }

    #[test]
    fn sizes_round_trip() {
        let samples = [
            0,
            1,
            125,
            1000,
            1023,
            1024,
            1536,
            65536,
            1_000_000,
            16 << 20,
            1 << 40,
            u64::MAX,
        ];
        for bytes in samples
            .into_iter()
            .chain((0..64).map(|shift| 1u64 << shift))
        {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
            assert_eq!(
                parse_size(&format_size(bytes.saturating_sub(1))),
                Ok(bytes.saturating_sub(1))
            );
        }
    }

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        // A bare number is seconds, on the command line and in the file alike.
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 2.5 "), Ok(Duration::from_millis(2500)));
        for bad in ["-1", "soon", "10 parsecs", "", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let toml_number = RawValue::unplaced(Value::Integer(5));
        assert_eq!((timeout().parse)(&toml_number), Ok(Duration::from_secs(5)));
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        for duration in [
            Duration::from_nanos(1),
            Duration::from_micros(250),
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::from_secs(86_400),
            Duration::new(3_723, 4_000_005),
        ] {
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }
}
