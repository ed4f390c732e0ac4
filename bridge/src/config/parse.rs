//! Reading a YAML document stream into [`RawConfig`].
//!
//! serde-saphyr parses with a [`Budget`](serde_saphyr::Budget) so that hostile input (alias
//! bombs, deep nesting, huge scalars, document storms) fails fast with a
//! [`BridgeError::Yaml`] instead of exhausting memory, and input over [`MAX_INPUT_BYTES`] is
//! refused before parsing.
//!
//! **Error paths.** `serde_path_to_error` cannot be used here: the raw types read their keys
//! as `Spanned<String>` to learn their line and column, and `serde_path_to_error` then records
//! every key as `?`. Instead, each raw mapping and sequence notes its key or index on the way
//! out of a failed `next_value`/`next_element` ([`track`]); the notes are kept in a
//! thread-local trace that [`parse_str`] resets before and reads after one parse.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use serde::de::{Deserialize, Deserializer};
use serde_saphyr::{Budget, MessageFormatter as _, Options, UserMessageFormatter};

use super::crd::RawDocument;
use crate::error::BridgeError;

/// Largest accepted input, in bytes (a bridge config is a few kilobytes).
pub const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Name used in errors for input that did not come from a file.
const IN_MEMORY: &str = "<input>";

/// A parsed multi-document YAML stream, before defaults and validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawConfig {
    /// Where the YAML came from: a file path, or `<input>`.
    pub source_name: String,
    /// The non-empty documents, in order; `documents[i]` in problem paths indexes this.
    pub documents: Vec<RawDocument>,
}

impl RawConfig {
    /// Parses YAML text holding one or more documents.
    ///
    /// # Errors
    ///
    /// [`BridgeError::TooLarge`] over [`MAX_INPUT_BYTES`]; [`BridgeError::Yaml`] for malformed
    /// YAML, a breached parser budget, or a value of the wrong type.
    pub fn parse_str(yaml: &str) -> Result<Self, BridgeError> {
        parse_str(yaml, IN_MEMORY)
    }

    /// Reads and parses a YAML file.
    ///
    /// # Errors
    ///
    /// [`BridgeError::Read`] when the file cannot be read, [`BridgeError::NotUtf8`], and the
    /// errors of [`RawConfig::parse_str`].
    pub fn load(path: &Path) -> Result<Self, BridgeError> {
        let source_name = path.display().to_string();
        let read_error = |source| BridgeError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| BridgeError::NotUtf8 {
            source_name: source_name.clone(),
        })?;
        parse_str(&text, &source_name)
    }
}

fn parse_str(yaml: &str, source_name: &str) -> Result<RawConfig, BridgeError> {
    if yaml.len() as u64 > MAX_INPUT_BYTES {
        return Err(BridgeError::TooLarge {
            source_name: source_name.to_owned(),
            limit: MAX_INPUT_BYTES,
        });
    }
    TRACE.with_borrow_mut(|trace| *trace = Trace::default());
    let parsed = serde_saphyr::from_multiple_with_options::<TrackedDocument>(yaml, options());
    let trace = TRACE.take();
    match parsed {
        Ok(documents) => Ok(RawConfig {
            source_name: source_name.to_owned(),
            documents: documents.into_iter().map(|doc| doc.0).collect(),
        }),
        Err(error) => {
            let location = error.location();
            let message = UserMessageFormatter.format_message(error.without_snippet());
            Err(BridgeError::Yaml {
                source_name: source_name.to_owned(),
                path: trace.path(),
                line: location.map(|l| l.line()).filter(|&l| l > 0),
                column: location.map(|l| l.column()).filter(|&c| c > 0),
                message: message.chars().filter(|c| !c.is_control()).collect(),
            })
        }
    }
}

/// Parser limits: generous for a bridge config, small enough that hostile input is cheap.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_documents = 256;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_events = 200_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES as usize;
    budget.max_reader_input_bytes = Some(MAX_INPUT_BYTES as usize);
    let mut options = Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options
}

/// One segment of a YAML path.
#[derive(Debug)]
pub(crate) enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl From<&String> for Segment {
    fn from(key: &String) -> Self {
        Segment::Key(key.clone())
    }
}

impl From<usize> for Segment {
    fn from(index: usize) -> Self {
        Segment::Index(index)
    }
}

/// What the current parse has recorded about its failure.
#[derive(Debug, Default)]
struct Trace {
    /// Documents whose deserialization has started; the last one is the current one.
    documents_started: usize,
    /// Segments noted while a failure travelled outwards: innermost first.
    segments: Vec<Segment>,
}

impl Trace {
    /// `documents[1].spec.routes[2].qos`, or empty when no document had started.
    fn path(&self) -> String {
        let Some(document) = self.documents_started.checked_sub(1) else {
            return String::new();
        };
        let mut path = format!("documents[{document}]");
        for segment in self.segments.iter().rev() {
            // Writing to a String cannot fail.
            let _ = match segment {
                Segment::Key(key) => write!(path, ".{key}"),
                Segment::Index(index) => write!(path, "[{index}]"),
            };
        }
        path
    }
}

thread_local! {
    static TRACE: RefCell<Trace> = RefCell::new(Trace::default());
}

/// Passes `result` through, noting `segment` in the current trace when it is an error.
pub(crate) fn track<T, E>(segment: impl Into<Segment>, result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        let segment = segment.into();
        TRACE.with_borrow_mut(|trace| trace.segments.push(segment));
    }
    result
}

/// A document that counts itself in the trace, so errors know their document index.
struct TrackedDocument(RawDocument);

impl<'de> Deserialize<'de> for TrackedDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TRACE.with_borrow_mut(|trace| {
            trace.documents_started += 1;
            trace.segments.clear();
        });
        RawDocument::deserialize(deserializer).map(TrackedDocument)
    }
}
