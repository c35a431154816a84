//! Reading zone files (and the other files a configuration names) without
//! trusting them: only regular files, never more than a fixed number of
//! bytes. A FIFO would block `check`, `serve` and a reload forever, and a
//! device such as `/dev/zero` would fill the memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Most bytes of zone text one zone may hold: its file and every file it
/// `$INCLUDE`s together (and the most any configured file may hold).
pub const MAX_ZONE_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest chain of `$INCLUDE`s (a file that includes itself stops here).
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Most `$INCLUDE` entries one zone may follow in total.
pub const MAX_INCLUDES: usize = 1024;

/// What kind of thing a path names, for messages.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn not_regular(meta: &std::fs::Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {}; only regular files are read", kind(meta)),
    )
}

/// Reads the regular file at `path` as UTF-8, refusing anything else
/// (FIFO, device, socket, directory) before opening it, and refusing a file
/// longer than `limit` bytes without reading more than `limit + 1`.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    // `metadata` follows symbolic links and never blocks, unlike opening a FIFO.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let file = File::open(path)?;
    // It may have been replaced between the two calls.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large(limit));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "it is larger than {}, the most txtfailover reads from one file",
            human_bytes(limit)
        ),
    )
}

/// `64 MiB`, `512 KiB` or `100 bytes`.
pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z");
        std::fs::write(&p, "abcd").unwrap();
        assert_eq!(read_text(&p, 4).unwrap(), "abcd");
        let e = read_text(&p, 3).unwrap_err();
        assert!(e.to_string().contains("larger than 3 bytes"), "{e}");
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text(dir.path(), MAX_ZONE_BYTES).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        #[cfg(unix)]
        {
            let e = read_text(Path::new("/dev/zero"), MAX_ZONE_BYTES).unwrap_err();
            assert!(e.to_string().contains("character device"), "{e}");
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(MAX_ZONE_BYTES), "64 MiB");
        assert_eq!(human_bytes(2048), "2 KiB");
        assert_eq!(human_bytes(7), "7 bytes");
    }
}
