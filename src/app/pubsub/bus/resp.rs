//! The part of RESP2 (the Redis protocol) the bus speaks, sans-IO: commands out as arrays of
//! bulk strings, and an incremental reader for replies and pub/sub pushes that takes whatever
//! bytes have arrived and says "not yet" until a whole value is there. Every length read from
//! the wire is bounded before anything is allocated for it.

/// One reply or push from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(String),
    Int(i64),
    /// `None` is the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the null array.
    Array(Option<Vec<Value>>),
}

/// Why bytes from Redis are not RESP the bus can read: the connection is dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    #[error("unexpected RESP type byte {0:#04x}")]
    UnknownType(u8),
    #[error("malformed RESP length or integer")]
    BadNumber,
    #[error("a RESP bulk string of {len} bytes is over the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("RESP values nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("a RESP line without its CR LF")]
    BadLine,
}

/// Deepest nesting read (pub/sub pushes are one array of scalars).
pub const MAX_DEPTH: usize = 4;
/// Most elements of one array: a push has 3 or 4, but `CLUSTER SLOTS` lists one range per run
/// of slots, at most one per slot.
pub const MAX_ARRAY_LEN: usize = 16384;
/// Longest simple line (status, error, length) read before it is refused.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Appends `args` as one command (`*N` then `$len` bulk strings).
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one value from the start of `buf`: `Ok(None)` while it is incomplete, else the value
/// and how many bytes it took. Bulk strings over `max_bulk` bytes are refused.
pub fn parse(buf: &[u8], max_bulk: usize) -> Result<Option<(Value, usize)>, RespError> {
    let mut reader = Reader {
        buf,
        at: 0,
        max_bulk,
    };
    match reader.value(0)? {
        Some(value) => Ok(Some((value, reader.at))),
        None => Ok(None),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    max_bulk: usize,
}

impl<'a> Reader<'a> {
    fn value(&mut self, depth: usize) -> Result<Option<Value>, RespError> {
        if depth > MAX_DEPTH {
            return Err(RespError::TooDeep);
        }
        let Some(&kind) = self.buf.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        let Some(line) = self.line()? else {
            return Ok(None);
        };
        Ok(Some(match kind {
            b'+' => Value::Simple(line.to_vec()),
            b'-' => Value::Error(String::from_utf8_lossy(line).into_owned()),
            b':' => Value::Int(number(line)?),
            b'$' => {
                let len = number(line)?;
                if len < 0 {
                    return Ok(Some(Value::Bulk(None)));
                }
                let len = usize::try_from(len).map_err(|_| RespError::BadNumber)?;
                if len > self.max_bulk {
                    return Err(RespError::TooLong {
                        len,
                        max: self.max_bulk,
                    });
                }
                let end = self.at + len;
                if self.buf.len() < end + 2 {
                    return Ok(None);
                }
                if &self.buf[end..end + 2] != b"\r\n" {
                    return Err(RespError::BadLine);
                }
                let bytes = self.buf[self.at..end].to_vec();
                self.at = end + 2;
                Value::Bulk(Some(bytes))
            }
            b'*' => {
                let len = number(line)?;
                if len < 0 {
                    return Ok(Some(Value::Array(None)));
                }
                let len = usize::try_from(len).map_err(|_| RespError::BadNumber)?;
                if len > MAX_ARRAY_LEN {
                    return Err(RespError::TooLong {
                        len,
                        max: MAX_ARRAY_LEN,
                    });
                }
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    match self.value(depth + 1)? {
                        Some(item) => items.push(item),
                        None => return Ok(None),
                    }
                }
                Value::Array(Some(items))
            }
            other => return Err(RespError::UnknownType(other)),
        }))
    }

    /// The rest of the current line, without its CR LF.
    fn line(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        let rest: &'a [u8] = &self.buf[self.at..];
        let window = &rest[..rest.len().min(MAX_LINE_BYTES + 2)];
        match window.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                self.at += end + 2;
                Ok(Some(&rest[..end]))
            }
            None if rest.len() > MAX_LINE_BYTES + 1 => Err(RespError::BadLine),
            None => Ok(None),
        }
    }
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::BadNumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"PUBLISH", b"ringws:a", b"x\r\ny"]);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$8\r\nringws:a\r\n$4\r\nx\r\ny\r\n"
        );
    }

    #[test]
    fn reads_a_push_whatever_the_split() {
        let push = b"*3\r\n$7\r\nmessage\r\n$8\r\nringws:a\r\n$4\r\nx\r\ny\r\n:12\r\n";
        let want = Value::Array(Some(vec![
            Value::Bulk(Some(b"message".to_vec())),
            Value::Bulk(Some(b"ringws:a".to_vec())),
            Value::Bulk(Some(b"x\r\ny".to_vec())),
        ]));
        let first_len = push.len() - 5;
        for cut in 0..first_len {
            assert_eq!(parse(&push[..cut], 100), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(push, 100), Ok(Some((want, first_len))));
        assert_eq!(
            parse(&push[first_len..], 100),
            Ok(Some((Value::Int(12), 5)))
        );
    }

    #[test]
    fn reads_every_scalar() {
        assert_eq!(
            parse(b"+PONG\r\n", 1),
            Ok(Some((Value::Simple(b"PONG".to_vec()), 7)))
        );
        assert_eq!(
            parse(b"-ERR no\r\n", 1),
            Ok(Some((Value::Error("ERR no".into()), 9)))
        );
        assert_eq!(parse(b"$-1\r\n", 1), Ok(Some((Value::Bulk(None), 5))));
        assert_eq!(parse(b"*-1\r\n", 1), Ok(Some((Value::Array(None), 5))));
    }

    #[test]
    fn refuses_what_it_cannot_bound_or_read() {
        assert_eq!(
            parse(b"$101\r\n", 100),
            Err(RespError::TooLong { len: 101, max: 100 })
        );
        assert_eq!(
            parse(b"*99999\r\n", 100).unwrap_err(),
            RespError::TooLong {
                len: 99999,
                max: MAX_ARRAY_LEN
            }
        );
        assert_eq!(parse(b"!3\r\n", 100), Err(RespError::UnknownType(b'!')));
        assert_eq!(parse(b":x\r\n", 100), Err(RespError::BadNumber));
        assert_eq!(parse(b"$1\r\nab\r\n", 100), Err(RespError::BadLine));
        assert_eq!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n", 100),
            Err(RespError::TooDeep)
        );
        let long = vec![b'+'; MAX_LINE_BYTES + 3];
        assert_eq!(parse(&long, 100), Err(RespError::BadLine));
    }
}
