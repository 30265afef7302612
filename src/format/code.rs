//! The retrieval code (protocol.md §1): 22 random Crockford base32 symbols
//! (110 bits) and two check symbols. The browser makes codes; this side only
//! reads them (for tests, vectors and the reviewer's documentation examples).
//!
//! Changing anything here invalidates codes melders hold on paper — see
//! tests/vectors/code.json.

use std::fmt;

/// Crockford base32 without I, L, O and U.
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Number of random symbols.
pub const DATA_LEN: usize = 22;
/// Number of symbols in a whole code, check included.
pub const CODE_LEN: usize = DATA_LEN + 2;
/// The check modulus: a prime above every weight and symbol difference, below 32².
const CHECK_MODULUS: u32 = 1021;

/// A code with a valid check, in canonical form (24 upper-case symbols).
///
/// The code is the melder's only secret, so it is zeroized when dropped and
/// has no `Debug` that would print it.
#[derive(Clone, PartialEq, Eq)]
pub struct RetrievalCode(zeroize::Zeroizing<String>);

/// Why a typed code was refused. Each says exactly what the melder must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A character that cannot occur in a code (1-based position after
    /// removing spaces and dashes).
    #[error("the character {character:?} at position {position} cannot occur in a code")]
    InvalidCharacter { character: char, position: usize },
    /// Too few or too many symbols.
    #[error("a code has {expected} characters, this one has {found}")]
    WrongLength { expected: usize, found: usize },
    /// The check symbols do not match: a typo or two swapped neighbours.
    #[error("the code does not check out: a character is wrong or two neighbours are swapped")]
    CheckFailed,
}

impl CodeError {
    /// The stable error code used in the vectors and in the browser.
    pub fn code(&self) -> &'static str {
        match self {
            CodeError::InvalidCharacter { .. } => "invalid_character",
            CodeError::WrongLength { .. } => "wrong_length",
            CodeError::CheckFailed => "check_failed",
        }
    }
}

fn symbol_value(symbol: u8) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| a == symbol)
        .map(|position| position as u32)
}

fn check_value(data: &[u32]) -> u32 {
    data.iter()
        .enumerate()
        .map(|(i, v)| (i as u32 + 1) * v)
        .sum::<u32>()
        % CHECK_MODULUS
}

impl RetrievalCode {
    /// Builds the code from 22 random bytes (each `& 31` is one symbol), as the
    /// browser does with `crypto.getRandomValues`.
    pub fn from_random_bytes(bytes: &[u8; DATA_LEN]) -> Self {
        let data: Vec<u32> = bytes.iter().map(|b| u32::from(b & 31)).collect();
        let check = check_value(&data);
        let mut text = String::with_capacity(CODE_LEN);
        for v in data.iter().chain([check / 32, check % 32].iter()) {
            text.push(ALPHABET[*v as usize] as char);
        }
        RetrievalCode(zeroize::Zeroizing::new(text))
    }

    /// A fresh code from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; DATA_LEN]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        Self::from_random_bytes(&bytes)
    }

    /// Reads a code as a melder typed it: spaces and dashes ignored, any case,
    /// O/I/L read as 0/1/1.
    pub fn parse(typed: &str) -> Result<Self, CodeError> {
        let mut symbols = zeroize::Zeroizing::new(String::with_capacity(CODE_LEN));
        let mut position = 0;
        for character in typed.chars() {
            if character.is_whitespace() || character == '-' {
                continue;
            }
            position += 1;
            let upper = match character.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            if !upper.is_ascii() || symbol_value(upper as u8).is_none() {
                return Err(CodeError::InvalidCharacter {
                    character,
                    position,
                });
            }
            symbols.push(upper);
        }
        if symbols.len() != CODE_LEN {
            return Err(CodeError::WrongLength {
                expected: CODE_LEN,
                found: symbols.len(),
            });
        }
        let values: Vec<u32> = symbols
            .bytes()
            .map(|s| symbol_value(s).expect("checked above"))
            .collect();
        let check = values[DATA_LEN] * 32 + values[DATA_LEN + 1];
        if check != check_value(&values[..DATA_LEN]) {
            return Err(CodeError::CheckFailed);
        }
        Ok(RetrievalCode(symbols))
    }

    /// The canonical form: 24 upper-case symbols, the input of the derivations.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    /// The display form: six groups of four joined by dashes.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..CODE_LEN / 4)
            .map(|g| &self.0[g * 4..g * 4 + 4])
            .collect();
        groups.join("-")
    }
}

impl fmt::Debug for RetrievalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetrievalCode(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RetrievalCode {
        let bytes: [u8; DATA_LEN] = std::array::from_fn(|i| (i * 37 + 11) as u8);
        RetrievalCode::from_random_bytes(&bytes)
    }

    #[test]
    fn round_trips_through_display_and_forgiving_input() {
        let code = sample();
        assert_eq!(RetrievalCode::parse(&code.display()).unwrap(), code);
        let sloppy = code.display().to_lowercase().replace('-', "  ");
        assert_eq!(RetrievalCode::parse(&sloppy).unwrap(), code);
    }

    #[test]
    fn catches_every_single_substitution_and_neighbour_swap() {
        for _ in 0..200 {
            let code = RetrievalCode::generate();
            let symbols: Vec<u8> = code.canonical().bytes().collect();
            for i in 0..CODE_LEN {
                for &replacement in ALPHABET.iter() {
                    if replacement == symbols[i] {
                        continue;
                    }
                    let mut typo = symbols.clone();
                    typo[i] = replacement;
                    let typo = String::from_utf8(typo).unwrap();
                    assert!(RetrievalCode::parse(&typo).is_err(), "missed {typo}");
                }
                if i + 1 < CODE_LEN && symbols[i] != symbols[i + 1] {
                    let mut swapped = symbols.clone();
                    swapped.swap(i, i + 1);
                    let swapped = String::from_utf8(swapped).unwrap();
                    assert!(RetrievalCode::parse(&swapped).is_err(), "missed {swapped}");
                }
            }
        }
    }

    #[test]
    fn hostile_input_gets_a_precise_error() {
        assert_eq!(
            RetrievalCode::parse(""),
            Err(CodeError::WrongLength {
                expected: 24,
                found: 0
            })
        );
        assert_eq!(
            RetrievalCode::parse("ABCD\u{0}"),
            Err(CodeError::InvalidCharacter {
                character: '\u{0}',
                position: 5
            })
        );
        assert_eq!(
            RetrievalCode::parse("ＡBCD"),
            Err(CodeError::InvalidCharacter {
                character: 'Ａ',
                position: 1
            })
        );
        assert_eq!(
            RetrievalCode::parse("U"),
            Err(CodeError::InvalidCharacter {
                character: 'U',
                position: 1
            })
        );
        let huge = "A".repeat(1_000_000);
        assert_eq!(
            RetrievalCode::parse(&huge),
            Err(CodeError::WrongLength {
                expected: 24,
                found: 1_000_000
            })
        );
    }

    #[test]
    fn generated_codes_are_valid_and_distinct() {
        let a = RetrievalCode::generate();
        let b = RetrievalCode::generate();
        assert_ne!(a, b);
        assert_eq!(RetrievalCode::parse(a.canonical()).unwrap(), a);
        assert!(!format!("{a:?}").contains(a.canonical()));
    }
}
