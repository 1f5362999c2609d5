//! Reading a TOML document while keeping every value's origin.
//!
//! Shared by the mise config reader and by `.sbx.toml`: parse a file into a spanned
//! `toml_edit::Document`, turn items into typed values with their [`Origin`], and report wrong
//! types and unknown keys (with a "did you mean") at the exact place.

use std::sync::Arc;

use toml_edit::{Item, TableLike, Value};

use crate::diagnostic::ConfigError;
use crate::{Origin, SourceFile, Spanned};

/// A parsed TOML file that still knows the byte span of every key and value.
pub struct TomlFile {
    /// The file's text and path.
    pub file: Arc<SourceFile>,
    /// The parsed document.
    pub doc: toml_edit::Document<String>,
}

impl TomlFile {
    /// Parses `file`, turning a syntax error into a diagnostic at the offending place.
    pub fn parse(file: Arc<SourceFile>) -> Result<Self, ConfigError> {
        match toml_edit::Document::parse(file.text.to_string()) {
            Ok(doc) => Ok(Self { file, doc }),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let origin = Origin::new(&file, span);
                let message = e.message().trim().to_string();
                Err(ConfigError::at(
                    &origin,
                    format!("invalid TOML in {}", file.path.display()),
                    message,
                    Some("fix the TOML syntax at the marked place".into()),
                ))
            }
        }
    }

    /// The origin of a span in this file.
    pub fn origin(&self, span: Option<std::ops::Range<usize>>) -> Origin {
        Origin::new(&self.file, span.unwrap_or(0..0))
    }

    /// The top-level table.
    pub fn root(&self) -> &toml_edit::Table {
        self.doc.as_table()
    }
}

/// A human name for the type of a TOML item, for "expected X, found Y" messages.
pub fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::InlineTable(_) => "inline table",
        },
    }
}

/// The span of an item, falling back to its key's span (implicit tables have none).
pub fn item_span(item: &Item, key: Option<&toml_edit::Key>) -> Option<std::ops::Range<usize>> {
    item.span().or_else(|| key.and_then(|k| k.span()))
}

/// One entry of a table: its key, the key's origin, the item and the item's origin.
pub struct Entry<'a> {
    /// The key as written (unquoted).
    pub key: &'a str,
    /// Where the key is.
    pub key_origin: Origin,
    /// The value.
    pub item: &'a Item,
    /// Where the value is (the key's place when the value has no span of its own).
    pub origin: Origin,
}

/// The entries of a table-like item with their origins, in file order.
pub fn entries<'a>(file: &TomlFile, table: &'a dyn TableLike) -> Vec<Entry<'a>> {
    table
        .iter()
        .filter_map(|(k, _)| table.get_key_value(k))
        .map(|(key, item)| Entry {
            key: key.get(),
            key_origin: file.origin(key.span()),
            item,
            origin: file.origin(item_span(item, Some(key))),
        })
        .collect()
}

/// Error for a value of the wrong type.
pub fn wrong_type(origin: &Origin, what: &str, expected: &str, item: &Item) -> ConfigError {
    let example = if expected.contains("array") {
        Some("write it as an array, e.g. [\"value\"]".to_string())
    } else if expected.contains("table") {
        Some("write it as a table, e.g. { key = \"value\" } or a [section]".to_string())
    } else if expected.contains("string") {
        Some("put the value in double quotes".to_string())
    } else {
        Some(format!("change the value to {expected}"))
    };
    ConfigError::at(
        origin,
        format!("{what} must be {expected}, found {}", type_name(item)),
        format!("expected {expected}"),
        example,
    )
}

/// Reads a string value.
pub fn string(entry: &Entry<'_>, what: &str) -> Result<Spanned<String>, ConfigError> {
    match entry.item.as_str() {
        Some(s) => Ok(Spanned::new(s.to_string(), entry.origin.clone())),
        None => Err(wrong_type(&entry.origin, what, "a string", entry.item)),
    }
}

/// Reads a boolean value.
pub fn boolean(entry: &Entry<'_>, what: &str) -> Result<Spanned<bool>, ConfigError> {
    match entry.item.as_bool() {
        Some(b) => Ok(Spanned::new(b, entry.origin.clone())),
        None => Err(wrong_type(&entry.origin, what, "true or false", entry.item)),
    }
}

/// Reads an array of strings, each with its own origin.
pub fn string_array(file: &TomlFile, entry: &Entry<'_>, what: &str) -> Result<Vec<Spanned<String>>, ConfigError> {
    let Some(array) = entry.item.as_array() else {
        return Err(wrong_type(&entry.origin, what, "an array of strings", entry.item));
    };
    array
        .iter()
        .map(|v| {
            let origin = file.origin(v.span());
            match v.as_str() {
                Some(s) => Ok(Spanned::new(s.to_string(), origin)),
                None => Err(wrong_type(&origin, &format!("each entry of {what}"), "a string", &Item::Value(v.clone()))),
            }
        })
        .collect()
}

/// Error for a key that is not allowed here, suggesting the closest allowed one.
pub fn unknown_key(entry: &Entry<'_>, section: &str, allowed: &[&str]) -> ConfigError {
    let help = match crate::suggest::closest(entry.key, allowed.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("known keys in {section}: {}", allowed.join(", ")),
    };
    ConfigError::at(
        &entry.key_origin,
        format!("unknown key `{}` in {section}", entry.key),
        "not a known key",
        Some(help),
    )
}
