//! The whole audit vocabulary: every event a record can be about and every outcome it can
//! record. Producers name them here and nowhere else; the strings are the stored format (read by
//! `audit query` and by whatever ships the log), so a variant's string never changes.

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $s:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)*
                }
            }

            /// The value stored as `s`, if it is one of ours.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What a record is about (`Record::event`).
    Event {
        /// An eth2 signing request.
        Sign => "sign",
        /// An EVM JSON-RPC signing request.
        Evm => "evm",
        /// Refused access (aggregated per credential and minute).
        Access => "access",
        /// A credential was created, revoked, reinstated or suspended.
        Token => "token",
        /// A key was imported, generated, enabled, disabled or deleted.
        Key => "key",
        /// The vault: initialised, rekeyed, rotated, unsealed, sealed, shares.
        Vault => "vault",
        /// A canary key was touched.
        Canary => "canary",
        /// Signing was halted or resumed.
        Halt => "halt",
        /// Keys, certificates and policy were reloaded.
        Reload => "reload",
        /// A signing-group peer asked this peer for its partial signature of an eth2 request.
        PartialSign => "partial_sign",
    }
}

vocabulary! {
    /// What was decided or done (`Record::decision`).
    Outcome {
        /// A signature was released.
        Signed => "signed",
        /// A rule refused the request (slashing protection, policy, canary, controls).
        Refused => "refused",
        /// The caller was not allowed (credential, scope, grant).
        Denied => "denied",
        /// The request failed for another reason; nothing was signed.
        Error => "error",
        /// A credential was suspended (canary).
        Suspended => "suspended",
        /// A credential was created.
        Created => "created",
        /// A credential was revoked.
        Revoked => "revoked",
        /// A suspended credential was reinstated.
        Reinstated => "reinstated",
        /// A key was imported.
        Imported => "imported",
        /// A key was generated.
        Generated => "generated",
        /// A key was enabled.
        Enabled => "enabled",
        /// A key was disabled.
        Disabled => "disabled",
        /// A key was deleted.
        Deleted => "deleted",
        /// Signing was halted.
        Halted => "halted",
        /// Signing was resumed.
        Resumed => "resumed",
        /// The vault was initialised.
        Initialized => "initialized",
        /// The vault's shares were replaced (same master key).
        Rekeyed => "rekeyed",
        /// The vault's master key was replaced.
        Rotated => "rotated",
        /// The vault was unsealed.
        Unsealed => "unsealed",
        /// The vault was sealed.
        Sealed => "sealed",
        /// An unseal share was accepted.
        ShareAccepted => "share_accepted",
        /// An unseal share was refused.
        ShareRefused => "share_refused",
        /// A signing-group peer dealt its share of a group key to a refreshed group.
        ShareDealt => "share_dealt",
        /// The shares submitted so far were discarded.
        UnsealReset => "unseal_reset",
        /// A reload was started.
        Accepted => "accepted",
        /// A reload is not available in this configuration.
        Unavailable => "unavailable",
        /// A reload was already running.
        Busy => "busy",
        /// A signed transaction was accepted by the upstream node (`eth_sendTransaction`).
        Submitted => "submitted",
        /// The upstream node did not accept a signed transaction.
        NotSubmitted => "not_submitted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_unique_and_round_trip() {
        for all in [
            Event::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        ] {
            let mut sorted = all.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), all.len());
        }
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(*e));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
    }
}
