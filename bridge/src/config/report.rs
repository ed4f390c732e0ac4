//! Validation results: [`Report`], [`Problem`], [`Severity`], [`Location`].

use std::fmt;

use serde::Serialize;

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The bridge must not run with this configuration.
    Error,
    /// The bridge can run, but probably not as intended.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A 1-based line and column in the YAML input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl Location {
    /// Converts a serde-saphyr location; `None` for its "unknown" marker (line 0).
    pub(crate) fn from_saphyr(location: serde_saphyr::Location) -> Option<Self> {
        (location.line() > 0).then(|| Location {
            line: location.line(),
            column: location.column(),
        })
    }
}

/// One problem found in a bridge configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where the problem is, as one string:
    /// `documents[1](MqttBridgeTopicMap/my-topic-map).spec.routes[2].target`. Problems that
    /// are not tied to a document (options given by the caller) use a plain name such as
    /// `options.remote_endpoint`.
    pub path: String,
    /// Index of the document in the YAML stream, when the problem is in one.
    pub document: Option<usize>,
    /// `Kind/name` of that document, when known.
    pub resource: Option<String>,
    /// The YAML path inside the document, e.g. `spec.routes[2].target`.
    pub field: String,
    /// Where in the input, when known.
    pub location: Option<Location>,
    /// One line saying what is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Which document a problem is in: its index and `Kind/name`, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Document index.
    pub(crate) document: Option<usize>,
    /// `Kind/name` of the document.
    pub(crate) resource: Option<String>,
}

impl Origin {
    /// The full path of `field` in this origin.
    fn path(&self, field: &str) -> String {
        let mut path = match (self.document, &self.resource) {
            (Some(index), Some(resource)) => format!("documents[{index}]({resource})"),
            (Some(index), None) => format!("documents[{index}]"),
            (None, _) => String::new(),
        };
        if !path.is_empty() && !field.is_empty() {
            path.push('.');
        }
        path.push_str(field);
        path
    }
}

/// Where a problem is: a document, a field path inside it and a location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Site {
    /// The document.
    pub(crate) origin: Origin,
    /// YAML path inside the document, or a name such as `options.keep_alive`.
    pub(crate) field: String,
    /// Line and column, when known.
    pub(crate) location: Option<Location>,
}

impl Site {
    /// A site outside the YAML input, such as a caller option.
    pub(crate) fn option(name: &str) -> Self {
        Site {
            field: name.to_owned(),
            ..Site::default()
        }
    }

    /// The site's full path.
    pub(crate) fn path(&self) -> String {
        self.origin.path(&self.field)
    }
}

/// Quotes user text for a one-line message: control characters are escaped.
pub(crate) fn show(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Every problem found in a configuration, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The problems.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.with_severity(Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.with_severity(Severity::Warning)
    }

    /// Whether there are no problems at all.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    fn with_severity(&self, severity: Severity) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.severity == severity)
    }

    /// Adds an error at `site`.
    pub(crate) fn error(&mut self, site: &Site, message: String) {
        self.push(Severity::Error, site, message);
    }

    /// Adds a warning at `site`.
    pub(crate) fn warning(&mut self, site: &Site, message: String) {
        self.push(Severity::Warning, site, message);
    }

    /// Adds a problem at `site`.
    pub(crate) fn push(&mut self, severity: Severity, site: &Site, message: String) {
        self.problems.push(Problem {
            severity,
            path: site.path(),
            document: site.origin.document,
            resource: site.origin.resource.clone(),
            field: site.field.clone(),
            location: site.location,
            message,
        });
    }
}

impl fmt::Display for Report {
    /// One problem per line: `error: path: message` or `warning: path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{}: {problem}", problem.severity)?;
        }
        Ok(())
    }
}
