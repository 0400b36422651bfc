//! Files and images as the chat client handles them, with no I/O of its own: the
//! thumbnail `/image` sends (decoded with limits, so a decompression bomb or a header
//! claiming 100000x100000 pixels is refused, never allocated), sizes in words, and where
//! `/save` puts what it downloads (a name from the sender is never a path).
//! The transfers themselves are `session.rs`'s; what is drawn is `render/messages.rs`'s
//! and `pictures.rs`'s.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

pub use crate::protocol::limits::MAX_THUMBNAIL_BYTES;

/// Largest side `/image` decodes: wider or taller images are sent as files. Covers any
/// camera or screenshot; refuses headers made to exhaust memory.
pub const MAX_DECODE_SIDE: u32 = 16_384;
/// Most memory one decode may take (a 16384x16384 RGBA image would be 1 GiB).
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Largest side of a received thumbnail the client decodes: thumbnails are small, and one
/// claiming more is a peer's mischief.
pub const MAX_THUMBNAIL_SIDE: u32 = 1_024;
const MAX_THUMBNAIL_DECODE_BYTES: u64 = 8 * 1024 * 1024;

/// The sides tried for a thumbnail, largest first, until one encodes within
/// [`MAX_THUMBNAIL_BYTES`]: 320x240 fills about 32x12 cells of a message list.
const THUMBNAIL_SIDES: [u32; 6] = [320, 240, 160, 112, 80, 48];

/// An image ready to upload: its size and the thumbnail the message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    pub width: u32,
    pub height: u32,
    /// PNG or JPEG, at most [`MAX_THUMBNAIL_BYTES`].
    pub thumbnail: Vec<u8>,
    pub thumbnail_width: u32,
    pub thumbnail_height: u32,
}

/// Why a file given to `/image` is sent as a plain file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnImage {
    #[error("not an image this client reads (PNG, JPEG, GIF, WebP)")]
    UnknownFormat,
    #[error("an image of {width}x{height} pixels, over the {MAX_DECODE_SIDE}x{MAX_DECODE_SIDE} this client decodes")]
    TooLarge { width: u32, height: u32 },
    #[error("an image that needs more memory to decode than this client allows")]
    TooMuchMemory,
    #[error("a broken image ({0})")]
    Broken(String),
}

/// Decodes `data` with limits on its sides and on the memory it may take.
fn decode_limited(data: &[u8], max_side: u32, max_alloc: u64) -> Result<DynamicImage, NotAnImage> {
    let mut reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| NotAnImage::Broken(e.to_string()))?;
    if reader.format().is_none() {
        return Err(NotAnImage::UnknownFormat);
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    // The header first: its claimed size is checked before a pixel is allocated, and the
    // error can say how big it claimed to be.
    let (width, height) = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| NotAnImage::Broken(e.to_string()))?
        .into_dimensions()
        .map_err(|e| classify(&e))?;
    if width > max_side || height > max_side {
        return Err(NotAnImage::TooLarge { width, height });
    }
    reader.decode().map_err(|e| classify(&e))
}

fn classify(error: &image::ImageError) -> NotAnImage {
    match error {
        image::ImageError::Unsupported(_) => NotAnImage::UnknownFormat,
        image::ImageError::Limits(_) => NotAnImage::TooMuchMemory,
        other => NotAnImage::Broken(other.to_string()),
    }
}

/// What `/image` sends with `data`: its size and a thumbnail within
/// [`MAX_THUMBNAIL_BYTES`] (PNG when it fits, else JPEG, smaller until it fits).
pub fn prepare_image(data: &[u8]) -> Result<PreparedImage, NotAnImage> {
    let image = decode_limited(data, MAX_DECODE_SIDE, MAX_DECODE_BYTES)?;
    let (width, height) = (image.width(), image.height());
    for side in THUMBNAIL_SIDES {
        // Never larger than the picture itself (`thumbnail` would scale a small one up).
        let small = if image.width() <= side && image.height() <= side {
            image.clone()
        } else {
            image.thumbnail(side, side)
        };
        if let Some(thumbnail) = encode_within(&small, MAX_THUMBNAIL_BYTES) {
            return Ok(PreparedImage {
                width,
                height,
                thumbnail,
                thumbnail_width: small.width(),
                thumbnail_height: small.height(),
            });
        }
    }
    // 48x48 in JPEG at quality 40 is far under 32 KiB; this cannot happen.
    Err(NotAnImage::Broken("no thumbnail fits".into()))
}

/// `image` as PNG, or as JPEG of decreasing quality, whichever first fits in `max` bytes.
fn encode_within(image: &DynamicImage, max: usize) -> Option<Vec<u8>> {
    let mut png = Vec::new();
    if image
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .is_ok()
        && png.len() <= max
    {
        return Some(png);
    }
    // JPEG has no alpha: flatten first.
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    for quality in [80, 60, 40] {
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality);
        if rgb.write_with_encoder(encoder).is_ok() && jpeg.len() <= max {
            return Some(jpeg);
        }
    }
    None
}

/// A received thumbnail, decoded with tight limits (it comes from another user).
pub fn decode_thumbnail(data: &[u8]) -> Option<DynamicImage> {
    if data.is_empty() || data.len() > MAX_THUMBNAIL_BYTES {
        return None;
    }
    decode_limited(data, MAX_THUMBNAIL_SIDE, MAX_THUMBNAIL_DECODE_BYTES).ok()
}

/// Sizes as people read them (512 B, 3.2 KiB, 20.0 MiB): the protocol's, which
/// `Message::summary` uses too.
pub use crate::protocol::message::human_size;

/// Words for a finished download or save: what, how big, where.
pub fn saved_words(name: &str, size: u64, path: &Path) -> String {
    format!("saved {name} ({}) to {}", human_size(size), path.display())
}

/// A name from another user made safe to create in a directory: its last component only,
/// no hidden or empty names, no control characters.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().trim_start_matches('.');
    if clean.is_empty() {
        "download".to_string()
    } else {
        clean.to_string()
    }
}

/// `~/x` as the home directory's `x` (paths typed after a slash command get no shell).
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), directories::UserDirs::new()) {
        (Ok(rest), Some(dirs)) => dirs.home_dir().join(rest),
        _ => path.to_path_buf(),
    }
}

/// The user's downloads directory (XDG `DOWNLOAD`), else the home directory, else here.
pub fn downloads_dir() -> PathBuf {
    directories::UserDirs::new().map_or_else(
        || PathBuf::from("."),
        |dirs| {
            dirs.download_dir()
                .map_or_else(|| dirs.home_dir().to_path_buf(), Path::to_path_buf)
        },
    )
}

/// Where `/save` writes a download called `name`: `given` if it names a file, inside it if
/// it is a directory, else in `default_dir`; a name already taken gets " (1)", " (2)"…
/// before its extension, as browsers do, so nothing is overwritten unasked.
pub fn save_path(
    given: Option<&Path>,
    name: &str,
    default_dir: &Path,
    exists: impl Fn(&Path) -> bool,
    is_dir: impl Fn(&Path) -> bool,
) -> PathBuf {
    let dir = match given {
        Some(path) if !is_dir(path) => return path.to_path_buf(),
        Some(dir) => dir,
        None => default_dir,
    };
    let name = safe_file_name(name);
    let first = dir.join(&name);
    if !exists(&first) {
        return first;
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name.as_str(), String::new()),
    };
    (1..u64::MAX)
        .map(|n| dir.join(format!("{stem} ({n}){extension}")))
        .find(|path| !exists(path))
        .expect("some number is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, noisy: bool) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            if noisy {
                // A pseudo-random pattern PNG cannot compress: forces the JPEG path.
                let v = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503);
                image::Rgb([(v >> 3) as u8, (v >> 11) as u8, (v >> 19) as u8])
            } else {
                image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
            }
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn thumbnails_fit_the_limit_and_keep_the_shape() {
        for (w, h, noisy) in [(1920, 1080, true), (64, 32, false), (3000, 200, true)] {
            let prepared = prepare_image(&png(w, h, noisy)).unwrap();
            assert_eq!((prepared.width, prepared.height), (w, h));
            assert!(prepared.thumbnail.len() <= MAX_THUMBNAIL_BYTES);
            assert!(prepared.thumbnail_width <= 320 && prepared.thumbnail_height <= 320);
            let back = decode_thumbnail(&prepared.thumbnail).expect("the thumbnail decodes");
            assert_eq!(
                (back.width(), back.height()),
                (prepared.thumbnail_width, prepared.thumbnail_height)
            );
            // Landscape stays landscape.
            assert!(prepared.thumbnail_width >= prepared.thumbnail_height);
        }
        // A small image keeps its size.
        let small = prepare_image(&png(64, 32, false)).unwrap();
        assert_eq!((small.thumbnail_width, small.thumbnail_height), (64, 32));
    }

    /// PNGs claiming 100000x100000 and 16000x16000 pixels over a few hundred bytes of
    /// compressed zeros: a decompression bomb's shape (a real one unpacks to gigabytes).
    const BOMB: &[u8] = include_bytes!("../../tests/fixtures/bomb-100000x100000.png");
    const BIG_BOMB_WITHIN_SIDES: &[u8] =
        include_bytes!("../../tests/fixtures/bomb-16000x16000.png");

    #[test]
    fn hostile_and_foreign_files_are_refused_without_decoding() {
        assert_eq!(
            prepare_image(BOMB),
            Err(NotAnImage::TooLarge {
                width: 100_000,
                height: 100_000
            })
        );
        assert_eq!(
            prepare_image(b"just some log lines\n"),
            Err(NotAnImage::UnknownFormat)
        );
        assert!(matches!(
            prepare_image(&png(40, 40, false)[..60]),
            Err(NotAnImage::Broken(_))
        ));
        // Within the side limit but over the memory limit (16000 x 16000 RGBA = 1 GiB).
        assert_eq!(
            prepare_image(BIG_BOMB_WITHIN_SIDES),
            Err(NotAnImage::TooMuchMemory)
        );
        // A received thumbnail is held to much less.
        assert!(decode_thumbnail(BIG_BOMB_WITHIN_SIDES).is_none());
        assert!(decode_thumbnail(b"").is_none());
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(3277), "3.2 KiB");
        assert_eq!(human_size(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(human_size(30 * 1024 * 1024 - 1), "30.0 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn downloads_never_escape_their_directory_nor_overwrite() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\x\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name(".."), "download");
        assert_eq!(safe_file_name("a\u{1b}[2Jb.txt"), "a[2Jb.txt");
        let dir = Path::new("/dl");
        let taken = ["/dl/app.log", "/dl/app (1).log", "/dl/README"];
        let exists = |p: &Path| taken.iter().any(|t| Path::new(t) == p);
        let no_dirs = |p: &Path| p == Path::new("/tmp");
        let save = |given: Option<&str>, name: &str| {
            save_path(given.map(Path::new), name, dir, exists, no_dirs)
        };
        assert_eq!(save(None, "shot.png"), Path::new("/dl/shot.png"));
        assert_eq!(save(None, "app.log"), Path::new("/dl/app (2).log"));
        assert_eq!(save(None, "README"), Path::new("/dl/README (1)"));
        assert_eq!(save(None, "../app.log"), Path::new("/dl/app (2).log"));
        assert_eq!(save(Some("/tmp"), "x/y.bin"), Path::new("/tmp/y.bin"));
        // A file path given is taken as it is: the user chose it.
        assert_eq!(
            save(Some("/tmp/out.bin"), "y.bin"),
            Path::new("/tmp/out.bin")
        );
    }
}
