//! The one duration parser: Go's `time.ParseDuration` (`30m`, `1h30m`,
//! `1.5h`, `-1s`), else an integer number of seconds (`3600`, `-1`). It reads
//! `OLLAMA_KEEP_ALIVE` as Ollama does (`envconfig.KeepAlive`; negative means
//! forever, and anything else Ollama silently replaces by 5 minutes, which is
//! why it is checked), and the duration flags of the commands, as kubectl and
//! the Kubernetes components read theirs.

use std::time::Duration;

use go_duration::go_duration;

/// How long a loaded model stays in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// A negative value: the model stays loaded.
    Forever,
    /// This many nanoseconds (0: unloaded after every request).
    Nanos(i64),
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Parses a keep-alive value, or says why Ollama would not read it.
pub fn parse_keep_alive(value: &str) -> Result<KeepAlive, String> {
    let nanos = match go_duration(value) {
        Some(nanos) => nanos,
        None => seconds(value)?,
    };
    Ok(if nanos < 0 {
        KeepAlive::Forever
    } else {
        KeepAlive::Nanos(nanos)
    })
}

/// A duration flag: a Go duration or whole seconds, not negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let nanos = match go_duration(text) {
        Some(nanos) => nanos,
        None => seconds(text)
            .map_err(|_| format!("{text:?} is not a duration such as 500ms, 10s, 2m or 1h"))?,
    };
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{text:?} is negative; give a duration such as 500ms, 10s or 2m"))
}

/// A certificate validity: whole days (`365d`) or a Go duration (`72h`,
/// `90s`), above zero and at most 1000 years.
pub fn parse_validity(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let wrong = || format!("{text:?} is not a validity such as 365d, 72h or 90s");
    let seconds = match text.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(24 * 3600))
            .ok_or_else(wrong)?,
        Some(_) => return Err(wrong()),
        None => go_duration(text)
            .and_then(|nanos| u64::try_from(nanos).ok())
            .map(|nanos| nanos / 1_000_000_000)
            .ok_or_else(wrong)?,
    };
    match seconds {
        0 => Err(wrong()),
        s if s > 1000 * 365 * 24 * 3600 => Err(format!("{text:?} is over 1000 years")),
        s => Ok(Duration::from_secs(s)),
    }
}

/// `strconv.ParseInt(value, 10, 64)` seconds, in nanoseconds.
fn seconds(value: &str) -> Result<i64, String> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{value:?} is neither a duration (such as 30m, 1h30m or -1s) nor a whole number of seconds (such as 3600 or -1)"
        ));
    }
    value
        .parse::<i64>()
        .ok()
        .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
        .ok_or_else(|| {
            format!("{value:?} seconds is too long a duration; use -1 to keep the model loaded")
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn validities() {
        let cases = [
            ("365d", Some(365 * 24 * 3600)),
            ("72h", Some(72 * 3600)),
            ("90s", Some(90)),
            ("1h30m", Some(5400)),
            (" 10d ", Some(240 * 3600)),
            ("0d", None),
            ("0s", None),
            ("500ms", None),
            ("1y", None),
            ("d", None),
            ("-1d", None),
            ("-1h", None),
            ("1.5d", None),
            ("3600", None),
            ("365000d", Some(365_000 * 24 * 3600)),
            ("365001d", None),
            ("", None),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_validity(text).ok(),
                seconds.map(Duration::from_secs),
                "{text:?}"
            );
        }
    }

    use super::*;

    const SECOND: i64 = NANOS_PER_SECOND;

    #[test]
    fn reads_what_ollama_reads() {
        let cases = [
            ("-1", KeepAlive::Forever),
            ("-1s", KeepAlive::Forever),
            ("-5m", KeepAlive::Forever),
            ("0", KeepAlive::Nanos(0)),
            ("00", KeepAlive::Nanos(0)),
            ("0s", KeepAlive::Nanos(0)),
            ("3600", KeepAlive::Nanos(3600 * SECOND)),
            ("+10", KeepAlive::Nanos(10 * SECOND)),
            ("30m", KeepAlive::Nanos(1800 * SECOND)),
            ("1h30m", KeepAlive::Nanos(5400 * SECOND)),
            ("1.5h", KeepAlive::Nanos(5400 * SECOND)),
            (".5m", KeepAlive::Nanos(30 * SECOND)),
            ("1.m", KeepAlive::Nanos(60 * SECOND)),
            ("+2s", KeepAlive::Nanos(2 * SECOND)),
            ("10ms", KeepAlive::Nanos(SECOND / 100)),
            ("3µs", KeepAlive::Nanos(3000)),
            ("3μs", KeepAlive::Nanos(3000)),
            ("1.0000000001s", KeepAlive::Nanos(SECOND)),
            ("2562047h", KeepAlive::Nanos(2_562_047 * 3600 * SECOND)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_keep_alive(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn flag_durations() {
        let cases = [
            ("10s", Some(10_000)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("3", Some(3000)),
            ("1.5s", Some(1500)),
            ("5h", Some(18_000_000)),
            ("1h30m", Some(5_400_000)),
            (" 2s ", Some(2000)),
            ("", None),
            ("-1s", None),
            ("-1", None),
            ("s", None),
            ("1.5", None),
            ("10 s", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{text:?}");
        }
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("such as 500ms")
        );
    }

    #[test]
    fn rejects_what_ollama_would_replace_by_five_minutes() {
        let cases = [
            "",
            "-",
            "+",
            "forever",
            "30 min",
            "5M",
            "1d",
            "1h-30m",
            "h",
            ".s",
            "1..5s",
            "s1",
            "1_000",
            "2562048h",
            "99999999999",
        ];
        for value in cases {
            assert!(
                parse_keep_alive(value).is_err(),
                "{value:?} should be rejected"
            );
        }
        assert!(
            parse_keep_alive("30 min")
                .unwrap_err()
                .contains("neither a duration")
        );
        assert!(
            parse_keep_alive("99999999999")
                .unwrap_err()
                .contains("too long")
        );
    }
}
