//! What `/send PATH` may read: a regular file within `--max-message`,
//! opened without waiting and read with a bound, so the loop never blocks
//! for long or reads without end. The controller decides what to do with
//! the contents or the refusal.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::core::chat::FileRefused;
use crate::core::input::InputError;
use crate::os::error::io_msg;

/// Reads a regular file of at most `max` bytes for `/send`. The open does
/// not wait for a FIFO's writer, and a file that grows past `max` while it
/// is read is refused.
pub fn read_file_message(path: &str, max: u64) -> Result<Vec<u8>, FileRefused> {
    if path.is_empty() {
        return Err(FileRefused::NoPath);
    }
    let unreadable = |err: std::io::Error| FileRefused::Unreadable {
        path: path.to_string(),
        why: io_msg(&err),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileRefused::NotAFile {
            path: path.to_string(),
        });
    }
    let too_large = || FileRefused::TooLarge(InputError::too_large(max));
    if meta.len() > max {
        return Err(too_large());
    }
    // O_NONBLOCK has no effect on a regular file: this is a plain read
    // from disk, bounded by `max`.
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() as u64 > max {
        return Err(too_large());
    }
    Ok(data)
}
