//! OCI documents (image config, manifest, index) built as JSON values and serialised
//! canonically: object keys sorted bytewise, no insignificant whitespace — so the same inputs
//! always give the same digest, whatever map type serde_json was compiled with.

use std::collections::BTreeMap;

use sbx_mise::Platform;
use serde_json::{Value, json};

use crate::digest::sha256_digest;

/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Serialises `value` canonically (sorted keys, compact).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            out.push(b'{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the referenced blob.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, for index entries.
    pub platform: Option<Platform>,
    /// Annotations (sorted).
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor for `bytes` with `media_type`.
    pub fn for_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The descriptor as JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size });
        if let Some(p) = &self.platform {
            v["platform"] = json!({ "os": p.oci_os(), "architecture": p.oci_arch() });
        }
        if !self.annotations.is_empty() {
            v["annotations"] = json!(self.annotations);
        }
        v
    }

    /// Reads a descriptor from JSON (as found in manifests and indexes).
    pub fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            media_type: v.get("mediaType")?.as_str()?.to_string(),
            digest: v.get("digest")?.as_str()?.to_string(),
            size: v.get("size")?.as_u64()?,
            platform: v.get("platform").and_then(|p| {
                let s = format!("{}/{}", p.get("os")?.as_str()?, p.get("architecture")?.as_str()?);
                s.parse().ok()
            }),
            annotations: v
                .get("annotations")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
        })
    }
}

/// One image history entry (no timestamps are ever written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// What produced the layer.
    pub created_by: String,
    /// Free-form comment.
    pub comment: Option<String>,
    /// Whether the entry has no layer.
    pub empty_layer: bool,
}

impl History {
    /// The entry as JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "created_by": self.created_by });
        if let Some(c) = &self.comment {
            v["comment"] = json!(c);
        }
        if self.empty_layer {
            v["empty_layer"] = json!(true);
        }
        v
    }
}

/// The runtime part of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `NAME=value` entries, in order.
    pub env: Vec<String>,
    /// `User`.
    pub user: String,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `Cmd`, if any.
    pub cmd: Vec<String>,
}

/// The image config document.
pub fn image_config(platform: Platform, runtime: &RuntimeConfig, diff_ids: &[String], history: &[History]) -> Value {
    let mut config = json!({ "Env": runtime.env, "User": runtime.user, "WorkingDir": runtime.working_dir });
    if !runtime.labels.is_empty() {
        config["Labels"] = json!(runtime.labels);
    }
    if !runtime.cmd.is_empty() {
        config["Cmd"] = json!(runtime.cmd);
    }
    json!({
        "architecture": platform.oci_arch(),
        "os": platform.oci_os(),
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history.iter().map(History::to_json).collect::<Vec<_>>(),
    })
}

/// An image manifest.
pub fn manifest(config: &Descriptor, layers: &[Descriptor], annotations: &BTreeMap<String, String>) -> Value {
    let mut v = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.to_json(),
        "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
    });
    if !annotations.is_empty() {
        v["annotations"] = json!(annotations);
    }
    v
}

/// An image index over `manifests`.
pub fn index(manifests: &[Descriptor], annotations: &BTreeMap<String, String>) -> Value {
    let mut v = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
    });
    if !annotations.is_empty() {
        v["annotations"] = json!(annotations);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":"é\n"}],"c":null}}"#).unwrap();
        assert_eq!(String::from_utf8(canonical_json(&v)).unwrap(), r#"{"a":{"c":null,"z":[{"x":"é\n","y":1}]},"b":1}"#);
    }

    #[test]
    fn documents() {
        let layer = Descriptor::for_bytes("application/vnd.oci.image.layer.v1.tar+gzip", b"x");
        let cfg = image_config(
            Platform::LINUX_AMD64,
            &RuntimeConfig {
                env: vec!["PATH=/bin".into()],
                user: "sbx".into(),
                working_dir: "/w".into(),
                ..Default::default()
            },
            &["sha256:00".into()],
            &[History { created_by: "sbx".into(), comment: None, empty_layer: false }],
        );
        assert_eq!(cfg["architecture"], "amd64");
        assert!(cfg.get("created").is_none());
        let cfg_desc = Descriptor::for_bytes(MEDIA_TYPE_CONFIG, &canonical_json(&cfg));
        let m = manifest(&cfg_desc, &[layer], &BTreeMap::new());
        assert_eq!(m["layers"][0]["size"], 1);
        let mut md = Descriptor::for_bytes(MEDIA_TYPE_MANIFEST, &canonical_json(&m));
        md.platform = Some(Platform::LINUX_ARM64);
        let idx = index(&[md.clone()], &BTreeMap::new());
        assert_eq!(idx["manifests"][0]["platform"]["architecture"], "arm64");
        assert_eq!(Descriptor::from_json(&idx["manifests"][0]).unwrap(), md);
    }
}
