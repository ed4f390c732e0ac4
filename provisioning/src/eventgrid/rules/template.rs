//! A syntax check of topic space templates (MQTT topic filters with variables).

/// The most segments a topic or filter may have.
const MAX_SEGMENTS: usize = 8;
/// The most bytes a topic may have.
const MAX_BYTES: usize = 256;

/// Checks one topic template; the error says what is wrong.
///
/// Templates are MQTT filters: `+` fills a whole segment, `#` a whole last segment. Variables
/// `${client.authenticationName}` and `${client.attributes.<key>}` (and the older
/// `${principal.name}` / `${principal.attributes.<key>}` the spec still shows) may fill a segment
/// or part of one, never more.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err("a topic template must not be empty".into());
    }
    if template.len() > MAX_BYTES {
        return Err(format!(
            "a topic template must be at most {MAX_BYTES} bytes long"
        ));
    }
    if template.starts_with('$') && !template.starts_with("${") {
        return Err("topics starting with '$' are reserved".into());
    }
    if template.contains('\0') {
        return Err("a topic template must not contain NUL".into());
    }
    let segments: Vec<&str> = template.split('/').collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(format!(
            "a topic template has at most {MAX_SEGMENTS} segments"
        ));
    }
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.contains('#') && (*segment != "#" || i != last) {
            return Err("'#' must be a whole segment and the last one".into());
        }
        if segment.contains('+') && *segment != "+" {
            return Err("'+' must be a whole segment".into());
        }
        check_variables(segment)?;
    }
    Ok(())
}

fn check_variables(segment: &str) -> Result<(), String> {
    let mut rest = segment;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed variable in {segment:?}"))?;
        let name = &after[..end];
        let attribute = name
            .strip_prefix("client.attributes.")
            .or_else(|| name.strip_prefix("principal.attributes."));
        let valid = matches!(name, "client.authenticationName" | "principal.name")
            || attribute.is_some_and(|key| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(format!(
                "unknown variable ${{{name}}}; use ${{client.authenticationName}} or ${{client.attributes.<key>}}"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_template;

    #[test]
    fn accepts_filters_and_variables() {
        for t in [
            "factory/telemetry/#",
            "command/#",
            "#",
            "a/+/b",
            "x/${client.authenticationName}/#",
            "machines/${client.authenticationName}.factory1/temp",
            "rooms/${client.attributes.room}/+",
            "devices/${principal.name}/${principal.attributes.keyName}",
        ] {
            assert_eq!(check_template(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn refuses_bad_templates() {
        for t in [
            "",
            "a/#/b",
            "a/b#",
            "a/+b",
            "$SYS/x",
            "a/${client.authenticationName",
            "a/${client.name}",
            "a/${client.attributes.}",
            "1/2/3/4/5/6/7/8/9",
        ] {
            assert!(check_template(t).is_err(), "{t}");
        }
    }
}
