//! Writing a case's attachments to a directory. File names come from the
//! melder and are hostile input: no path, no device name, no control or
//! reserved character survives, and nothing that exists is overwritten.
//! A file is written under a temporary name and renamed only when complete,
//! so a refused or interrupted export leaves no half file under a real name.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::ReviewError;

const MAX_NAME_CHARS: usize = 100;
/// Names Windows treats as devices, with or without an extension.
const WINDOWS_DEVICES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A file name safe on Linux and Windows, made from an untrusted name: only
/// its last path component, characters outside a conservative set replaced
/// by `_`, no leading dots or dashes, no trailing dots or spaces, no device
/// names, at most 100 characters; `bijlage` when nothing is left.
pub fn sanitize_file_name(untrusted: &str) -> String {
    let last = untrusted.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| {
            let safe = c.is_alphanumeric() && !is_confusable_format(c)
                || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')' | '+' | ',');
            if safe { c } else { '_' }
        })
        .collect();
    name = name
        .trim_start_matches(['.', '-', ' '])
        .trim_end_matches(['.', ' '])
        .to_string();
    if name.chars().count() > MAX_NAME_CHARS {
        // Keep the extension, which tells the counsellor what the file is.
        let (stem, extension) = match name.rsplit_once('.') {
            Some((stem, ext)) if ext.chars().count() <= 10 => (stem.to_string(), format!(".{ext}")),
            _ => (name.clone(), String::new()),
        };
        let keep = MAX_NAME_CHARS - extension.chars().count();
        name = stem.chars().take(keep).collect::<String>() + &extension;
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_ascii_uppercase();
    if WINDOWS_DEVICES.contains(&stem.as_str()) {
        name = format!("_{name}");
    }
    if name.is_empty() {
        "bijlage".into()
    } else {
        name
    }
}

/// Characters that are letters to Unicode but reorder or hide text.
fn is_confusable_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Writes `bytes` under `dir` as `name`, or `name (2)`, `name (3)`… if taken.
/// Never overwrites, never follows a name outside `dir`.
pub fn write_new_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ReviewError> {
    write_new_file_with(dir, name, |file| file.write_all(bytes))?.map_err(ReviewError::io(dir))
}

/// Like [`write_new_file`], with the content written by `fill` into a
/// temporary file in `dir`. When `fill` fails, the temporary file is removed
/// and its error returned inside `Ok`; only trouble with `dir` itself is an
/// outer error.
pub fn write_new_file_with<E>(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), E>,
) -> Result<Result<PathBuf, E>, ReviewError> {
    let (temporary, mut file) = create_temporary(dir)?;
    let filled = fill(&mut file);
    let finished = match filled {
        Ok(()) => file.sync_all().map_err(ReviewError::io(&temporary)),
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&temporary);
            return Ok(Err(e));
        }
    };
    drop(file);
    let placed = finished.and_then(|()| {
        // Claim a free name, then move the complete file over the claim:
        // rename alone would overwrite a file that appeared meanwhile.
        let (path, claim) = create_new_name(dir, name)?;
        drop(claim);
        super::vault::rename_over(&temporary, &path).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            ReviewError::io(&path)(e)
        })?;
        Ok(path)
    });
    if placed.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    placed.map(Ok)
}

/// Creates `path` if nothing is there yet; `None` if something is. An
/// exported file is a decrypted report's: readable by its owner only.
fn create_if_absent(path: &Path) -> Result<Option<std::fs::File>, ReviewError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(ReviewError::io(path)(e)),
    }
}

/// Creates the export folder, and any missing parent, readable by its
/// owner only (0700 on unix); a folder that exists is left as it is.
pub fn create_private_dir(dir: &Path) -> Result<(), ReviewError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(ReviewError::io(dir))
}

/// A new hidden file `.meldkluis-<random>.part` in `dir`.
fn create_temporary(dir: &Path) -> Result<(PathBuf, std::fs::File), ReviewError> {
    loop {
        let mut random = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let path = dir.join(format!(".meldkluis-{}.part", hex::encode(random)));
        if let Some(file) = create_if_absent(&path)? {
            return Ok((path, file));
        }
    }
}

/// Creates `name`, or `name (2)`, `name (3)`… under `dir`: the first that
/// does not exist.
fn create_new_name(dir: &Path, name: &str) -> Result<(PathBuf, std::fs::File), ReviewError> {
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name.to_string(), String::new()),
    };
    for n in 1..10_000 {
        let candidate = if n == 1 {
            name.to_string()
        } else {
            format!("{stem} ({n}){extension}")
        };
        let path = dir.join(&candidate);
        if let Some(file) = create_if_absent(&path)? {
            return Ok((path, file));
        }
    }
    Err(ReviewError::io(dir)(std::io::Error::other(
        "too many files with this name",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_harmless() {
        for (hostile, expected) in [
            ("../../.bashrc", "bashrc"),
            ("..\\..\\Windows\\system32\\cmd.exe", "cmd.exe"),
            ("/etc/passwd", "passwd"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("LPT1.pdf", "_LPT1.pdf"),
            ("a\0b", "a_b"),
            ("regel\nnieuw.txt", "regel_nieuw.txt"),
            ("\u{1b}[31mrood.pdf", "__31mrood.pdf"),
            ("fact\u{202e}fdp.exe", "fact_fdp.exe"),
            ("", "bijlage"),
            ("...", "bijlage"),
            ("name. ", "name"),
            ("-rf", "rf"),
            ("verslag maart (def).pdf", "verslag maart (def).pdf"),
            ("Überweisung.xlsx", "Überweisung.xlsx"),
        ] {
            assert_eq!(sanitize_file_name(hostile), expected, "{hostile:?}");
        }
        let long = format!("{}.pdf", "x".repeat(500));
        let safe = sanitize_file_name(&long);
        assert_eq!(safe.chars().count(), MAX_NAME_CHARS);
        assert!(safe.ends_with(".pdf"));
    }

    #[test]
    fn a_failed_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let result = write_new_file_with(dir.path(), "scan.pdf", |file| {
            file.write_all(b"half")?;
            Err::<(), _>(std::io::Error::other("damaged"))
        })
        .unwrap();
        assert!(result.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let path = write_new_file_with(dir.path(), "scan.pdf", |file| file.write_all(b"whole"))
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_new_file(dir.path(), "scan.pdf", b"1").unwrap();
        let second = write_new_file(dir.path(), "scan.pdf", b"2").unwrap();
        assert_ne!(first, second);
        assert!(second.ends_with("scan (2).pdf"));
        assert_eq!(std::fs::read(first).unwrap(), b"1");
    }
}
