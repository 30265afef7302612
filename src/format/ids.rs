//! Random 128-bit identifiers for cases and messages, written as 32 lower-case
//! hex characters. They are random so they say nothing about order or time.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            pub fn random() -> Self {
                let mut bytes = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
                $name(bytes)
            }

            /// Exactly 32 lower-case hex characters.
            pub fn parse(text: &str) -> Option<Self> {
                if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                let mut bytes = [0u8; 16];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some($name(bytes))
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(concat!("a ", stringify!($name), " is 32 lower-case hex characters"))
                })
            }
        }
    };
}

random_id!(
    /// A case: one report and everything said about it since.
    CaseId
);
random_id!(
    /// One message in a case.
    MessageId
);
random_id!(
    /// One streamed attachment upload (protocol.md §3a); a capability for
    /// writing it until a message claims it.
    UploadId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_strict() {
        let id = CaseId::random();
        assert_eq!(CaseId::parse(&id.to_hex()), Some(id));
        assert_eq!(CaseId::parse(&id.to_hex().to_uppercase()), None);
        assert_eq!(CaseId::parse("../../etc/passwd"), None);
        assert_eq!(CaseId::parse(""), None);
        assert_ne!(CaseId::random(), CaseId::random());
    }
}
