//! Profile pictures: uploaded through the settings page, checked by their bytes (PNG,
//! JPEG, GIF or WebP, at most [`MAX_PICTURE_BYTES`]), stored under `<data dir>/pictures`
//! with a random name, served at `/pictures/{file}`.
//!
//! A file is complete before it has its name (written under a temporary name, then
//! renamed), and a replaced file is deleted only once the database points to its successor.
//! What a crash leaves between those steps is swept at the next start.

use std::num::NonZeroU32;
use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::random_hex;
use crate::store::{Store, StoreError};

/// Largest picture accepted.
pub const MAX_PICTURE_BYTES: usize = 2 * 1024 * 1024;

/// Uploads per account and minute (a burst of this many, refilled evenly): each one is
/// up to [`MAX_PICTURE_BYTES`] written and synced to disk.
const UPLOADS_PER_MINUTE: u32 = 10;

/// Prefix of the temporary name an upload is written under before it is renamed.
const PARTIAL_PREFIX: &str = ".upload-";

/// Accounts tracked before stale entries are swept.
const SWEEP_ABOVE: usize = 10_000;

/// Limits picture uploads per account.
pub struct UploadLimit {
    inner: governor::DefaultKeyedRateLimiter<i64>,
}

impl Default for UploadLimit {
    fn default() -> Self {
        let n = NonZeroU32::new(UPLOADS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self { inner: governor::RateLimiter::keyed(governor::Quota::per_minute(n)) }
    }
}

impl UploadLimit {
    /// Counts one upload by `user_id`; false if over the quota.
    pub fn allow(&self, user_id: i64) -> bool {
        if self.inner.len() > SWEEP_ABOVE {
            self.inner.retain_recent();
        }
        self.inner.check_key(&user_id).is_ok()
    }
}

/// An image format we accept, recognised by its signature, never by the file name or the
/// browser's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Gif, Self::Webp].into_iter().find(|k| k.extension() == ext)
    }

    fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PictureError {
    #[error("The picture is larger than {} MiB", MAX_PICTURE_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("The file is not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
    #[error("No file was chosen")]
    Empty,
}

/// Checks an upload; returns its format.
pub fn check(bytes: &[u8]) -> Result<ImageKind, PictureError> {
    if bytes.is_empty() {
        return Err(PictureError::Empty);
    }
    if bytes.len() > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge);
    }
    ImageKind::sniff(bytes).ok_or(PictureError::NotAnImage)
}

fn dir(state: &AppState) -> PathBuf {
    state.data_dir.join("pictures")
}

/// Stores a checked picture for a user; returns its file name. The file appears under that
/// name complete or not at all.
pub async fn save(state: &AppState, user_id: i64, kind: ImageKind, bytes: &[u8]) -> std::io::Result<String> {
    let dir = dir(state);
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Like everything in the data dir: the server serves them, nobody else reads them.
    #[cfg(unix)]
    {
        builder.mode(0o700);
        options.mode(0o600);
    }
    builder.create(&dir).await?;
    let file = format!("{user_id}-{}.{}", random_hex(8), kind.extension());
    let partial = dir.join(format!("{PARTIAL_PREFIX}{}", random_hex(8)));
    let written = async {
        let mut out = options.open(&partial).await?;
        tokio::io::AsyncWriteExt::write_all(&mut out, bytes).await?;
        out.sync_all().await?;
        tokio::fs::rename(&partial, dir.join(&file)).await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    Ok(file)
}

/// Makes `file` (or none) the user's picture, then deletes the one it replaced. On a
/// database error the new file is deleted and the old one kept.
pub async fn replace(state: &AppState, user_id: i64, file: Option<&str>) -> Result<(), StoreError> {
    match state.store.replace_profile_picture(user_id, file).await {
        Ok(previous) => {
            if let Some(previous) = previous.filter(|p| Some(p.as_str()) != file) {
                remove(state, &previous).await;
            }
            Ok(())
        }
        Err(e) => {
            if let Some(file) = file {
                remove(state, file).await;
            }
            Err(e)
        }
    }
}

/// Deletes the files in the pictures dir that no account refers to: uploads cut short by a
/// crash, pictures replaced or whose account was deleted while an upload ran. Run at
/// start-up, before any upload can be under way. Files with names we never make are left
/// alone. Returns how many were deleted.
pub async fn sweep_orphans(store: &Store, data_dir: &FsPath) -> Result<usize, String> {
    let dir = data_dir.join("pictures");
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let in_use: std::collections::HashSet<String> =
        store.profile_pictures().await.map_err(|e| format!("listing profile pictures: {e}"))?.into_iter().collect();
    let mut swept = 0;
    while let Some(entry) = entries.next_entry().await.map_err(|e| format!("{}: {e}", dir.display()))? {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let ours = is_picture_name(&name) || name.starts_with(PARTIAL_PREFIX);
        if !ours || in_use.contains(&name) {
            continue;
        }
        match tokio::fs::remove_file(entry.path()).await {
            Ok(()) => swept += 1,
            Err(e) => tracing::warn!("removing orphaned picture {name}: {e}"),
        }
    }
    Ok(swept)
}

/// Deletes a stored picture; a missing file is not an error.
pub async fn remove(state: &AppState, file: &str) {
    if !is_picture_name(file) {
        return;
    }
    match tokio::fs::remove_file(dir(state).join(file)).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => tracing::warn!("removing picture {file}: {e}"),
        _ => {}
    }
}

/// Names we generate (`<id>-<16 hex>.<ext>`): anything else is refused before touching
/// the file system, so no path can escape the pictures directory.
fn is_picture_name(file: &str) -> bool {
    let Some((stem, ext)) = file.rsplit_once('.') else { return false };
    let Some((id, random)) = stem.split_once('-') else { return false };
    ImageKind::from_extension(ext).is_some()
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The public URL of a stored picture.
pub fn url(file: &str) -> String {
    format!("/pictures/{file}")
}

/// `GET /pictures/{file}`.
pub async fn serve(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such picture").into_response();
    if !is_picture_name(&file) {
        return not_found();
    }
    let Some(kind) = file.rsplit_once('.').and_then(|(_, ext)| ImageKind::from_extension(ext)) else {
        return not_found();
    };
    let Ok(bytes) = tokio::fs::read(dir(&state).join(&file)).await else {
        return not_found();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind.mime()));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    // Names are never reused (a new upload gets a new random name).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_by_their_bytes() {
        assert_eq!(check(b"\x89PNG\r\n\x1a\n rest"), Ok(ImageKind::Png));
        assert_eq!(check(b"\xff\xd8\xff\xe0 jfif"), Ok(ImageKind::Jpeg));
        assert_eq!(check(b"GIF89a..."), Ok(ImageKind::Gif));
        assert_eq!(check(b"RIFF\x10\0\0\0WEBPVP8 "), Ok(ImageKind::Webp));
        assert_eq!(check(b"<svg onload=alert(1)>"), Err(PictureError::NotAnImage));
        assert_eq!(check(b"%PDF-1.7"), Err(PictureError::NotAnImage));
        assert_eq!(check(b""), Err(PictureError::Empty));
        let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
        big.resize(MAX_PICTURE_BYTES + 1, 0);
        assert_eq!(check(&big), Err(PictureError::TooLarge));
    }

    #[test]
    fn only_generated_names_are_served() {
        assert!(is_picture_name("12-0123456789abcdef.png"));
        for bad in ["../jwt_secret", "12-0123456789abcdef.svg", "x-0123456789abcdef.png", "12-short.png", "12.png"] {
            assert!(!is_picture_name(bad), "{bad}");
        }
    }

    #[test]
    fn uploads_are_limited_per_account() {
        let limit = UploadLimit::default();
        assert!((0..UPLOADS_PER_MINUTE).all(|_| limit.allow(1)));
        assert!(!limit.allow(1));
        assert!(limit.allow(2), "other accounts keep their own quota");
    }
}
