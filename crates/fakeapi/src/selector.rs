//! Label and field selectors, as the API server parses them.

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed `labelSelector` (all requirements must hold; empty selects
/// everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Req>);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str, whole: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!(
            "unable to parse requirement: invalid label key {key:?} in {whole:?}"
        ));
    }
    Ok(key.to_string())
}

impl LabelSelector {
    /// Parses `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
    /// `key notin (a,b)`, `key>n`, `key<n`, comma separated.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "unable to parse requirement: empty requirement in {s:?}"
                ));
            }
            let req = if let Some(rest) = part.strip_prefix('!') {
                Req::NotExists(check_key(rest, part)?)
            } else if let Some(open) = part.find('(') {
                let close = part
                    .rfind(')')
                    .filter(|&c| c > open && part[c + 1..].trim().is_empty())
                    .ok_or_else(|| format!("unable to parse requirement: {part:?}"))?;
                let head: Vec<&str> = part[..open].split_whitespace().collect();
                let values: Vec<String> = part[open + 1..close]
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                match head.as_slice() {
                    [key, "in"] => Req::In(check_key(key, part)?, values),
                    [key, "notin"] => Req::NotIn(check_key(key, part)?, values),
                    _ => return Err(format!("unable to parse requirement: {part:?}")),
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::NotEq(check_key(k, part)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(check_key(k, part)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(check_key(k, part)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid integer in {part:?}"))?;
                Req::Gt(check_key(k, part)?, n)
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid integer in {part:?}"))?;
                Req::Lt(check_key(k, part)?, n)
            } else {
                Req::Exists(check_key(part, part)?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Req::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Req::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// A parsed `fieldSelector`: `path=value`, `path==value`, `path!=value`,
/// comma separated, `path` a dotted JSON path (`metadata.name`,
/// `status.phase`); a missing field compares as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(reqs));
        }
        for part in s.split(',') {
            let part = part.trim();
            let (path, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: {part:?}; can't understand {part:?}"
                ));
            };
            let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("invalid field path in {part:?}"));
            }
            reqs.push((path, equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let mut cur = Some(obj);
            for seg in path {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors() {
        let o =
            obj(json!({"app": "web", "multicluster.kubernetes.io/service-name": "s", "n": "5"}));
        let bare = json!({"metadata": {"name": "b"}});
        let cases = [
            ("", true, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app!=db", true, true),
            ("multicluster.kubernetes.io/service-name", true, false),
            ("!multicluster.kubernetes.io/service-name", false, true),
            ("app in (db, web)", true, false),
            ("app notin (db,web)", false, true),
            ("app notin (db)", true, true),
            ("app=web,n>4", true, false),
            ("app=web,n<5", false, false),
            ("app=web, !other, app in (web)", true, false),
        ];
        for (sel, want_o, want_bare) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&o), want_o, "{sel} on labelled");
            assert_eq!(s.matches(&bare), want_bare, "{sel} on bare");
        }
        for bad in ["a,,b", "!", "a in (x", "x y"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let t = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(t("metadata.name=a"));
        assert!(t("metadata.name==a,metadata.namespace=ns"));
        assert!(!t("metadata.name!=a"));
        assert!(t("status.phase!=Failed"));
        assert!(t("spec.nodeName="));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
