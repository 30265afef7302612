//! Attachments on the desk: a safe preview (plain text; PNG and JPEG
//! decoded by pure-Rust decoders under size limits, recognised by their
//! first bytes, never by the melder's stated type), the metadata that can
//! identify a melder, and export with or without that metadata.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use egui::{ColorImage, RichText, TextureHandle, TextureOptions, Ui};

use super::text::Texts;
use super::widgets;
use crate::format::envelope::Envelope;
use crate::format::ids::CaseId;
use crate::review::attachment::{self, DecryptError};
use crate::review::export::write_new_file;
use crate::review::i18n::Lang;
use crate::review::untrusted::Untrusted;
use crate::review::vault::Vault;
use crate::review::views::AttachmentView;

/// The largest file shown in the program (and cleaned in memory).
pub const MAX_PREVIEW_BYTES: usize = 32 * 1024 * 1024;
/// The largest image decoded: 40 megapixels (160 MiB as RGBA).
pub const MAX_PIXELS: u64 = 40_000_000;
/// The most text shown in a preview.
const MAX_TEXT_CHARS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Png,
    Jpeg,
    Text,
    Other,
}

/// What a file is, by its first bytes.
pub fn sniff(bytes: &[u8]) -> FileKind {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        FileKind::Png
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        FileKind::Jpeg
    } else if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        FileKind::Text
    } else {
        FileKind::Other
    }
}

/// Whether the program offers export without metadata: JPEG and PNG only.
pub fn can_clean(export_name: &str) -> bool {
    let lower = export_name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Why a file could not be read from the vault.
#[derive(Debug)]
pub enum LoadError {
    TooLarge,
    Unavailable(String),
}

/// The decrypted bytes of one attachment, at most `limit` of them.
pub fn attachment_bytes(
    vault: &Vault,
    case: &CaseId,
    attachment: &AttachmentView,
    limit: usize,
    lang: Lang,
) -> Result<Vec<u8>, LoadError> {
    let words = lang.words();
    let record = vault
        .state
        .cases
        .get(case)
        .and_then(|c| c.messages.get(attachment.message - 1))
        .ok_or_else(|| LoadError::Unavailable(String::new()))?;
    let body = vault
        .read_message(&record.id)
        .map_err(|e| LoadError::Unavailable(words.error(&e)))?;
    let envelope = Envelope::open(&body, &vault.identities())
        .map_err(|e| LoadError::Unavailable(e.to_string()))?;
    let entry = envelope
        .attachments
        .get(attachment.index)
        .ok_or_else(|| LoadError::Unavailable(String::new()))?;
    match entry.stream() {
        None => {
            let bytes = entry
                .bytes()
                .map_err(|e| LoadError::Unavailable(e.to_string()))?;
            if bytes.len() > limit {
                return Err(LoadError::TooLarge);
            }
            Ok(bytes)
        }
        Some(stream) => {
            if stream.size > limit as u64 {
                return Err(LoadError::TooLarge);
            }
            let mut out = Limited {
                bytes: Vec::with_capacity(stream.size as usize),
                limit,
            };
            attachment::decrypt(vault, &stream, &mut out).map_err(|e| match e {
                DecryptError::Damaged(damage) => LoadError::Unavailable(words.damage(&damage)),
                DecryptError::Write(_) => LoadError::TooLarge,
            })?;
            Ok(out.bytes)
        }
    }
}

/// A memory buffer that refuses to grow past its limit.
struct Limited {
    bytes: Vec<u8>,
    limit: usize,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("over the preview limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A decoded image, as RGBA.
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

/// Decodes a PNG or JPEG within [`MAX_PIXELS`]; `None` for anything else
/// or anything broken.
pub fn decode_image(bytes: &[u8]) -> Option<Decoded> {
    match sniff(bytes) {
        FileKind::Png => decode_png(bytes),
        FileKind::Jpeg => decode_jpeg(bytes),
        _ => None,
    }
}

fn decode_png(bytes: &[u8]) -> Option<Decoded> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: (MAX_PIXELS * 8) as usize,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().ok()?;
    let (width, height) = (reader.info().width, reader.info().height);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return None;
    }
    let mut buffer = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut buffer).ok()?;
    let data = &buffer[..frame.buffer_size()];
    let rgba = match frame.color_type {
        png::ColorType::Rgba => data.to_vec(),
        png::ColorType::Rgb => data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::Grayscale => data.iter().flat_map(|g| [*g, *g, *g, 255]).collect(),
        png::ColorType::GrayscaleAlpha => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Indexed => return None,
    };
    Some(Decoded {
        width: width as usize,
        height: height as usize,
        rgba,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Option<Decoded> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size((MAX_PIXELS * 4) as usize);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    if u64::from(info.width) * u64::from(info.height) > MAX_PIXELS {
        return None;
    }
    let data = decoder.decode().ok()?;
    let rgba = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|g| [*g, *g, *g, 255]).collect(),
        jpeg_decoder::PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], 255])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - u16::from(p[3]);
                let f = |c: u8| ((255 - u16::from(c)) * k / 255) as u8;
                [f(p[0]), f(p[1]), f(p[2]), 255]
            })
            .collect(),
    };
    Some(Decoded {
        width: usize::from(info.width),
        height: usize::from(info.height),
        rgba,
    })
}

/// Metadata that can identify the melder: EXIF camera, GPS, author, dates;
/// PNG text chunks; JPEG comments and XMP. Values are untrusted.
pub fn identifying_metadata(bytes: &[u8]) -> Vec<(String, Untrusted)> {
    let mut found = Vec::new();
    let kind = sniff(bytes);
    if matches!(kind, FileKind::Jpeg | FileKind::Png)
        && let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes))
    {
        for field in exif.fields() {
            let name = field.tag.to_string();
            let identifying = [
                "Make",
                "Model",
                "BodySerialNumber",
                "LensModel",
                "LensSerialNumber",
                "Artist",
                "Copyright",
                "Software",
                "DateTime",
                "DateTimeOriginal",
                "DateTimeDigitized",
                "OffsetTimeOriginal",
                "ImageUniqueID",
                "CameraOwnerName",
                "HostComputer",
            ]
            .contains(&name.as_str())
                || name.starts_with("GPS");
            if identifying {
                let value = field.display_value().with_unit(&exif).to_string();
                found.push((name, Untrusted::new(value)));
            }
        }
    }
    match kind {
        FileKind::Jpeg => {
            if let Ok(jpeg) = img_parts::jpeg::Jpeg::from_bytes(bytes.to_vec().into()) {
                for segment in jpeg.segments() {
                    let contents = segment.contents();
                    if segment.marker() == img_parts::jpeg::markers::COM {
                        found.push((
                            "Comment".into(),
                            Untrusted::new(String::from_utf8_lossy(contents).into_owned()),
                        ));
                    } else if segment.marker() == img_parts::jpeg::markers::APP1
                        && contents.starts_with(b"http://ns.adobe.com/xap/1.0/")
                    {
                        found.push(("XMP".into(), Untrusted::new(xmp_excerpt(contents))));
                    }
                }
            }
        }
        FileKind::Png => {
            if let Ok(png) = img_parts::png::Png::from_bytes(bytes.to_vec().into()) {
                for chunk in png.chunks() {
                    let kind = chunk.kind();
                    if [*b"tEXt", *b"iTXt", *b"zTXt", *b"tIME"].contains(&kind) {
                        let label = String::from_utf8_lossy(&kind).into_owned();
                        let text = String::from_utf8_lossy(chunk.contents()).replace('\0', ": ");
                        found.push((label, Untrusted::new(text)));
                    }
                }
            }
        }
        _ => {}
    }
    found
}

fn xmp_excerpt(contents: &[u8]) -> String {
    String::from_utf8_lossy(contents)
        .chars()
        .take(300)
        .collect()
}

/// The same image without metadata: JPEG APPn segments other than JFIF and
/// the colour profile, and comments, are dropped; PNG text, time and EXIF
/// chunks are dropped. The compressed pixels are copied untouched, so
/// nothing is re-encoded or lost.
pub fn strip_metadata(bytes: &[u8]) -> Option<Vec<u8>> {
    use img_parts::jpeg::markers;
    match sniff(bytes) {
        FileKind::Jpeg => {
            let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(bytes.to_vec().into()).ok()?;
            jpeg.segments_mut().retain(|segment| {
                let marker = segment.marker();
                let is_app = (markers::APP0..=markers::APP15).contains(&marker);
                let keep_app = (marker == markers::APP0 && segment.contents().starts_with(b"JFIF"))
                    || (marker == markers::APP2 && segment.contents().starts_with(b"ICC_PROFILE"));
                !(marker == markers::COM || (is_app && !keep_app))
            });
            let mut out = Vec::new();
            jpeg.encoder().write_to(&mut out).ok()?;
            Some(out)
        }
        FileKind::Png => {
            let mut png = img_parts::png::Png::from_bytes(bytes.to_vec().into()).ok()?;
            png.chunks_mut().retain(|chunk| {
                ![*b"tEXt", *b"iTXt", *b"zTXt", *b"tIME", *b"eXIf"].contains(&chunk.kind())
            });
            let mut out = Vec::new();
            png.encoder().write_to(&mut out).ok()?;
            Some(out)
        }
        _ => None,
    }
}

/// Exports one attachment into `dir` under its safe name, never
/// overwriting; `clean` strips metadata from JPEG and PNG.
pub fn export(
    vault: &Vault,
    case: &CaseId,
    attachment: &AttachmentView,
    clean: bool,
    dir: &Path,
    lang: Lang,
) -> Result<PathBuf, String> {
    let words = lang.words();
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", super::display_path(dir)))?;
    let bytes =
        attachment_bytes(vault, case, attachment, usize::MAX, lang).map_err(|e| match e {
            LoadError::TooLarge => super::text::texts(lang).preview_too_large.to_string(),
            LoadError::Unavailable(why) => why,
        })?;
    let bytes = if clean {
        strip_metadata(&bytes).unwrap_or(bytes)
    } else {
        bytes
    };
    write_new_file(dir, &attachment.export_name, &bytes).map_err(|e| words.error(&e))
}

/// The preview window's content.
pub struct Preview {
    title: String,
    content: Shown,
    metadata: Vec<(String, Untrusted)>,
    cleanable: bool,
}

enum Shown {
    Text(Untrusted),
    /// Decoded, waiting for the first frame to become a texture.
    Pending(ColorImage, [usize; 2]),
    Image(TextureHandle, [usize; 2]),
    NotSupported,
    TooLarge,
    BadImage,
    Unavailable(String),
}

impl Preview {
    pub fn load(vault: &Vault, case: &CaseId, attachment: &AttachmentView, lang: Lang) -> Self {
        let title = attachment.export_name.clone();
        let mut metadata = Vec::new();
        let mut cleanable = false;
        let content = match attachment_bytes(vault, case, attachment, MAX_PREVIEW_BYTES, lang) {
            Err(LoadError::TooLarge) => Shown::TooLarge,
            Err(LoadError::Unavailable(why)) => Shown::Unavailable(why),
            Ok(bytes) => match sniff(&bytes) {
                FileKind::Text => {
                    let text: String = String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(MAX_TEXT_CHARS)
                        .collect();
                    Shown::Text(Untrusted::new(text))
                }
                FileKind::Png | FileKind::Jpeg => {
                    metadata = identifying_metadata(&bytes);
                    cleanable = true;
                    match decode_image(&bytes) {
                        Some(image) => {
                            let color = ColorImage::from_rgba_unmultiplied(
                                [image.width, image.height],
                                &image.rgba,
                            );
                            Shown::Pending(color, [image.width, image.height])
                        }
                        None => Shown::BadImage,
                    }
                }
                FileKind::Other => Shown::NotSupported,
            },
        };
        Preview {
            title,
            content,
            metadata,
            cleanable,
        }
    }

    /// Shows the preview; `true` when the counsellor closes it.
    pub fn ui(&mut self, ui: &mut Ui, texts: &Texts, _lang: Lang) -> bool {
        let close = widgets::button(ui, texts.close_preview).clicked()
            || ui.input(|i| i.key_pressed(egui::Key::Escape));
        ui.heading(format!("{}: {}", texts.preview_heading_file, self.title));
        if let Shown::Pending(..) = &self.content {
            let Shown::Pending(color, size) =
                std::mem::replace(&mut self.content, Shown::NotSupported)
            else {
                unreachable!()
            };
            let texture = ui
                .ctx()
                .load_texture(self.title.clone(), color, TextureOptions::LINEAR);
            self.content = Shown::Image(texture, size);
        }
        ui.label(RichText::new(texts.metadata_heading).strong());
        if self.metadata.is_empty() {
            if self.cleanable {
                ui.label(texts.metadata_none);
            } else {
                ui.label(texts.exported_as_is);
            }
        } else {
            ui.label(RichText::new(texts.metadata_warning).color(ui.visuals().warn_fg_color));
            egui::Grid::new("metadata").striped(true).show(ui, |ui| {
                for (name, value) in &self.metadata {
                    ui.label(name);
                    ui.label(value.excerpt(160));
                    ui.end_row();
                }
            });
        }
        ui.separator();
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| match &self.content {
                Shown::Text(text) => widgets::untrusted_block(ui, text),
                Shown::Image(texture, [w, h]) => {
                    let available = ui.available_width().max(100.0);
                    let scale = (available / *w as f32).min(1.0);
                    ui.add(
                        egui::Image::new(texture)
                            .fit_to_exact_size(egui::vec2(*w as f32 * scale, *h as f32 * scale))
                            .alt_text(self.title.clone()),
                    );
                }
                Shown::NotSupported => {
                    ui.label(texts.preview_not_supported);
                }
                Shown::TooLarge => {
                    ui.label(texts.preview_too_large);
                }
                Shown::BadImage => {
                    ui.label(texts.preview_bad_image);
                }
                Shown::Unavailable(why) => {
                    ui.label(why.as_str());
                }
                Shown::Pending(..) => {}
            });
        close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2×1 PNG with a tEXt "Author" chunk, made with the png crate.
    fn png_with_author() -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, 2, 1);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder
                .add_text_chunk("Author".into(), "J. de Melder".into())
                .unwrap();
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[255, 0, 0, 0, 0, 255]).unwrap();
        }
        out
    }

    #[test]
    fn png_metadata_is_found_and_stripped_losslessly() {
        let original = png_with_author();
        let found = identifying_metadata(&original);
        assert!(found.iter().any(|(_, v)| v.raw().contains("J. de Melder")));
        let clean = strip_metadata(&original).unwrap();
        assert!(identifying_metadata(&clean).is_empty());
        let (a, b) = (
            decode_image(&original).unwrap(),
            decode_image(&clean).unwrap(),
        );
        assert_eq!(b.rgba.len(), 2 * 4);
        assert_eq!((a.width, a.height, a.rgba), (b.width, b.height, b.rgba));
    }

    #[test]
    fn hostile_images_are_refused_not_decoded() {
        assert!(decode_image(b"\x89PNG\r\n\x1a\ngarbage").is_none());
        assert!(decode_image(&[0xff, 0xd8, 0xff, 0xe0, 0, 2]).is_none());
        assert_eq!(sniff(b"MZ\x90\0"), FileKind::Other);
        assert_eq!(sniff("gewoon tekst".as_bytes()), FileKind::Text);
        assert!(strip_metadata(b"not an image").is_none());
        // A PNG header claiming 100000 × 100000 pixels is refused before
        // any pixel buffer is made.
        let mut huge = png_with_author();
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode_image(&huge).is_none());
    }
}
