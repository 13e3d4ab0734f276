//! Pictures: checked as real PNG, JPEG, GIF or WebP images, stored per tenant schema
//! under `MEDIA_ROOT/<schema>/hotels/`.

use std::io::{Cursor, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::{ImageFormat, ImageReader, Limits};

/// Largest accepted picture.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;

pub const INVALID: &str =
    "Upload a valid image. The file you uploaded was either not an image or a corrupted image.";
pub const EMPTY: &str = "The submitted file is empty.";
pub const TOO_BIG: &str = "Ensure this file is no larger than 5 MiB.";

/// Where pictures go inside a tenant's media directory.
const SUBDIR: &str = "hotels";

/// A checked picture, ready to be written.
#[derive(Debug)]
pub struct Picture {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    /// The client's file name, reduced to safe characters (no extension).
    pub stem: String,
}

/// Checks that `bytes` is a whole, decodable PNG, JPEG, GIF or WebP image. The format
/// comes from the content, never from the file name.
pub fn check(bytes: Vec<u8>, client_name: Option<&str>) -> Result<Picture, &'static str> {
    if bytes.is_empty() {
        return Err(EMPTY);
    }
    if bytes.len() as u64 > MAX_BYTES {
        return Err(TOO_BIG);
    }
    let format = image::guess_format(&bytes).map_err(|_| INVALID)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(INVALID);
    }
    decode(&bytes, format).map_err(|_| INVALID)?;
    Ok(Picture {
        stem: safe_stem(client_name.unwrap_or("")),
        bytes,
        format,
    })
}

/// Decodes an image within bounds (16384 pixels a side, 256 MiB of memory).
fn decode(bytes: &[u8], format: ImageFormat) -> image::ImageResult<image::DynamicImage> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    reader.decode()
}

/// A PNG of a stored picture scaled down to fit `width` × `height` (the admin panel's
/// thumbnails; a smaller picture keeps its size); `None` if the file is not an image
/// this service accepts.
pub fn thumbnail(bytes: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    let format = image::guess_format(bytes).ok()?;
    let mut small = decode(bytes, format).ok()?;
    if small.width() > width || small.height() > height {
        small = small.thumbnail(width, height);
    }
    let mut out = Cursor::new(Vec::new());
    small.write_to(&mut out, ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

/// Letters, digits, `-` and `_` of the client's name, at most 40 of them; `picture` if none.
fn safe_stem(name: &str) -> String {
    let stem = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = stem.split('.').next().unwrap_or(stem);
    let clean: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    if clean.is_empty() {
        "picture".into()
    } else {
        clean
    }
}

fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        _ => "jpg",
    }
}

/// The media directory of one schema.
pub fn tenant_dir(media_root: &Path, schema: &str) -> PathBuf {
    media_root.join(schema)
}

/// Writes `picture` under the schema's directory with a fresh name; returns the path
/// relative to that directory (e.g. `hotels/ritz_1a2b.png`), as stored in the row.
pub fn store(media_root: &Path, schema: &str, picture: &Picture) -> std::io::Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = tenant_dir(media_root, schema).join(SUBDIR);
    std::fs::create_dir_all(&dir)?;
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let token = (nanos as u64) ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed);
        let file = format!(
            "{}_{:x}.{}",
            picture.stem,
            token & 0xffff_ffff,
            extension(picture.format)
        );
        let path = dir.join(&file);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                if let Err(e) = f.write_all(&picture.bytes).and_then(|()| f.sync_all()) {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                return Ok(format!("{SUBDIR}/{file}"));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes a stored picture; a missing file is not an error.
pub fn remove(media_root: &Path, schema: &str, relative: &str) {
    if let Some(path) = resolve(media_root, schema, relative) {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != ErrorKind::NotFound {
                log::warn!("could not remove {}: {e}", path.display());
            }
        }
    }
}

/// The file for a `/media/<relative>` path in one schema, or `None` if the path is not
/// one this service could have written (only `[A-Za-z0-9._-]` segments, none starting
/// with a dot).
pub fn resolve(media_root: &Path, schema: &str, relative: &str) -> Option<PathBuf> {
    let mut path = tenant_dir(media_root, schema);
    let mut any = false;
    for segment in relative.split('/') {
        let ok = !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return None;
        }
        path.push(segment);
        any = true;
    }
    any.then_some(path)
}

/// The URL path a client fetches a stored picture from.
pub fn url(relative: &str) -> String {
    rocket::uri!(crate::media::serve(std::path::PathBuf::from(relative))).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::RgbImage::new(2, 2)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn accepts_real_images_only() {
        let ok = check(png(), Some("../My Hotel.PNG.exe")).unwrap();
        assert_eq!(ok.format, ImageFormat::Png);
        assert_eq!(ok.stem, "MyHotel");
        assert_eq!(check(Vec::new(), None).unwrap_err(), EMPTY);
        assert_eq!(
            check(b"hello".to_vec(), Some("a.png")).unwrap_err(),
            INVALID
        );
        let mut truncated = png();
        truncated.truncate(30);
        assert_eq!(check(truncated, None).unwrap_err(), INVALID);
        // A BMP header is not one of the accepted formats.
        let bmp = [b"BM".as_slice(), &[0; 60]].concat();
        assert_eq!(check(bmp, None).unwrap_err(), INVALID);
    }

    #[test]
    fn thumbnails_fit_the_box() {
        let mut big = Cursor::new(Vec::new());
        image::RgbImage::new(400, 100)
            .write_to(&mut big, ImageFormat::Jpeg)
            .unwrap();
        let thumb = thumbnail(big.get_ref(), 128, 96).unwrap();
        let decoded = image::load_from_memory_with_format(&thumb, ImageFormat::Png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (128, 32));
        let tiny = thumbnail(&png(), 128, 96).unwrap();
        let decoded = image::load_from_memory_with_format(&tiny, ImageFormat::Png).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (2, 2),
            "never enlarged"
        );
        assert_eq!(thumbnail(b"not an image", 128, 96), None);
    }

    #[test]
    fn media_paths() {
        let root = Path::new("/m");
        assert_eq!(
            resolve(root, "demo1", "hotels/a_1.png"),
            Some(PathBuf::from("/m/demo1/hotels/a_1.png"))
        );
        for bad in [
            "",
            "../x",
            "hotels/../x",
            ".hidden",
            "a//b",
            "a/b c",
            "a\\b",
        ] {
            assert_eq!(resolve(root, "demo1", bad), None, "{bad}");
        }
        assert_eq!(url("hotels/a.png"), "/media/hotels/a.png");
    }
}
