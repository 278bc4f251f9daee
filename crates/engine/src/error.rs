//! The engine's errors, each with a stable code.

/// Why the engine could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting names an environment variable that is not set.
    #[error("environment variable {var} (named by {setting}) is not set")]
    MissingEnv {
        /// The variable.
        var: String,
        /// The setting that named it.
        setting: &'static str,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server secret could not be read or created.
    #[error("server secret: {0}")]
    Secret(#[from] signward_auth::AuthError),
    /// The slashing protection database could not be opened.
    #[error("opening the slashing protection database: {0}")]
    Slashing(#[from] signward_slashing::SlashingError),
}

impl EngineError {
    /// Stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::MissingEnv { .. } => "missing_env",
            EngineError::DataDir { .. } => "data_dir",
            EngineError::Secret(_) => "server_secret",
            EngineError::Slashing(e) => e.class(),
        }
    }
}
