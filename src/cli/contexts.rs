//! Named servers for the CLI (`--context NAME`): `$XDG_CONFIG_HOME/monkeyproof/config.toml`
//! (`~/.config/…` without it), which must be its owner's alone (mode 0600: it holds tokens).
//!
//! ```toml
//! default = "box"                      # used when no --context is given
//! [contexts.box]
//! url = "https://box.example.com"
//! token_file = "/home/me/.config/monkeyproof/box.token"   # or: token = "..."
//! ```

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::Deserialize;

/// One named server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    pub default: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// Where the config file is.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".config")))?;
    Some(base.join("monkeyproof/config.toml"))
}

impl Contexts {
    /// The config file's contexts (none if there is no file). Refused if others may read it.
    pub fn load() -> Result<Self, String> {
        let Some(path) = path() else {
            return Ok(Self::default());
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return Ok(Self::default());
        };
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} may be read by others and holds tokens: chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The context `name` (or the default one when none is named).
    pub fn pick(&self, name: Option<&str>) -> Result<Option<&Context>, String> {
        match name.or(self.default.as_deref()) {
            None => Ok(None),
            Some(name) => self.contexts.get(name).map(Some).ok_or_else(|| {
                let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
                format!(
                    "no context {name:?} in {} (known: {})",
                    path().map(|p| p.display().to_string()).unwrap_or_default(),
                    known.join(", ")
                )
            }),
        }
    }
}
