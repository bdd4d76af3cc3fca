//! Request parameters checked and normalised: numbers from query strings, terminal sizes, the
//! working directory, labels. Every refusal is a 400 naming what is wrong.

use std::path::PathBuf;

use super::error::ApiError;
use crate::engine::TermSize;
use crate::engine::cgroup::{self, LimitRequest};

/// The message for a bad `since` (transcript and WebSocket alike).
pub const SINCE_ERROR: &str = "since must be a non-negative byte offset";
/// Labels a session may have.
pub const MAX_LABELS: usize = 64;
/// Longest label kept, in characters (longer ones are cut).
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest owner accepted, in characters.
pub const MAX_OWNER_CHARS: usize = 256;

/// An optional number from a query string: absent or empty is `None`, anything unparsable is 400
/// with `error`.
pub fn optional_number<T: std::str::FromStr>(
    raw: Option<&str>,
    error: &str,
) -> Result<Option<T>, ApiError> {
    raw.filter(|v| !v.is_empty())
        .map(|v| v.parse::<T>().map_err(|_| ApiError::bad_request(error)))
        .transpose()
}

/// A checked terminal size, or 400.
pub fn term_size(cols: i64, rows: i64) -> Result<TermSize, ApiError> {
    u16::try_from(cols)
        .ok()
        .zip(u16::try_from(rows).ok())
        .and_then(|(c, r)| TermSize::new(c, r))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "cols and rows must be integers from 1 to {}",
                crate::engine::MAX_DIMENSION
            ))
        })
}

/// The working directory: `$HOME` by default, relative paths against the server's cwd.
pub fn resolve_cwd(cwd: Option<&str>) -> Result<PathBuf, ApiError> {
    let path = match cwd.filter(|c| !c.is_empty()) {
        Some(c) if c.contains('\0') => {
            return Err(ApiError::bad_request("cwd must not contain NUL"));
        }
        Some(c) => PathBuf::from(c),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
    };
    std::path::absolute(&path).map_err(ApiError::internal)
}

/// At most `MAX_LABELS` labels, each trimmed, lowercased and cut to `MAX_LABEL_CHARS`; empties
/// dropped, duplicates dropped in order. Linear in the input.
pub fn labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::bad_request(format!(
            "labels: at most {MAX_LABELS} labels"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(labels
        .iter()
        .map(|l| label(l))
        .filter(|l| !l.is_empty() && seen.insert(l.clone()))
        .collect())
}

/// One label as stored and as matched by `?label=`.
pub fn label(label: &str) -> String {
    label
        .trim()
        .chars()
        .take(MAX_LABEL_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

/// A session's cgroup limits, each in its range (see `engine::cgroup`), or 400.
pub fn limits(
    memory_max: Option<u64>,
    pids_max: Option<u64>,
    cpu_weight: Option<u64>,
) -> Result<LimitRequest, ApiError> {
    for (name, value, range) in [
        ("memoryMax", memory_max, cgroup::MEMORY_MAX_RANGE),
        ("pidsMax", pids_max, cgroup::PIDS_MAX_RANGE),
        ("cpuWeight", cpu_weight, cgroup::CPU_WEIGHT_RANGE),
    ] {
        if let Some(value) = value.filter(|v| !range.contains(v)) {
            return Err(ApiError::bad_request(format!(
                "{name} must be {} to {} (not {value})",
                range.start(),
                range.end()
            )));
        }
    }
    Ok(LimitRequest {
        memory_max,
        pids_max,
        cpu_weight,
    })
}

/// The owner, if not empty; at most `MAX_OWNER_CHARS`.
pub fn owner(owner: Option<String>) -> Result<Option<String>, ApiError> {
    match owner.filter(|o| !o.is_empty()) {
        Some(o) if o.chars().count() > MAX_OWNER_CHARS => Err(ApiError::bad_request(format!(
            "owner: at most {MAX_OWNER_CHARS} characters"
        ))),
        owner => Ok(owner),
    }
}

/// The name, trimmed, if not empty: at most `MAX_NAME_CHARS`, no control characters.
pub fn name(name: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(name) = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "name: at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name: no control characters (newlines, escapes)",
        ));
    }
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalized() {
        let long = "x".repeat(100);
        let given = vec![
            " Foo ".into(),
            "foo".into(),
            "".into(),
            "  ".into(),
            "Bar".into(),
            long,
        ];
        let out = labels(given).unwrap();
        assert_eq!(out[..2], ["foo", "bar"]);
        assert_eq!(out[2].len(), 64);
        assert_eq!(out.len(), 3);
        assert!(labels(vec!["a".into(); MAX_LABELS + 1]).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(term_size(80, 24).is_ok());
        assert!(term_size(0, 24).is_err());
        assert!(term_size(-1, 24).is_err());
        assert!(term_size(80, 100_000).is_err());
    }
}
