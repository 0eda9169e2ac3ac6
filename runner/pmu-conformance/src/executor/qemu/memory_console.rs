//! The host's side of the probe kernel's console in guest memory
//! ([`pmu_kernel_checks::memory_console`]): a file that backs the guest's
//! RAM (`-object memory-backend-file,…,share=on`, named by `-M
//! …,memory-backend=`), read while the guest runs, so that the console
//! costs the guest no VM exit. Under kvm_pvm a byte to the debug port costs
//! about 50 µs, and a plan's records are about 10 KB: 0.6 s of a 24-case
//! boot, against 0.09 s for all the rest.
//!
//! The file is a sparse temporary file, in /dev/shm where there is one
//! (no disk writes for the guest's RAM), removed when the boot ends. The
//! launcher reads it as it reads the debug port: each poll takes the text
//! the guest's count covers, with the same caps (at most
//! [`CONSOLE_LIMIT`](super::launcher::CONSOLE_LIMIT), which is the
//! region's capacity too, so a flooding guest is seen as one).

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use pmu_kernel_checks::memory_console::{DROPPED, HEADER_BYTES, MAGIC, Region, WRITTEN};

use super::launcher::CONSOLE_LIMIT;

/// Where the region lies in guest RAM: at 64 MiB, clear of the kernel's
/// image (1 MiB and up) and of what QEMU loads below 1 MiB.
pub const BASE: u64 = 64 << 20;
/// The region: a header and [`CONSOLE_LIMIT`] bytes of text.
pub const REGION: Region = Region {
    base: BASE,
    len: HEADER_BYTES as u64 + CONSOLE_LIMIT as u64,
};
/// The smallest guest RAM that holds the region, in MiB.
pub const MIN_MEMORY_MIB: u32 = ((BASE + REGION.len) >> 20) as u32 + 1;
/// The memory backend's id on QEMU's command line.
const ID: &str = "pmuc-ram";

/// A guest's RAM as a file, and how much of its console has been read.
#[derive(Debug)]
pub struct MemoryConsole {
    file: tempfile::NamedTempFile,
    read: u64,
}

impl MemoryConsole {
    /// A sparse file of `memory_mib` MiB for a guest's RAM.
    pub fn create(memory_mib: u32) -> io::Result<MemoryConsole> {
        let shm = Path::new("/dev/shm");
        let file = if shm.is_dir() {
            tempfile::Builder::new().prefix("pmuc-guest-ram-").tempfile_in(shm)
        } else {
            tempfile::Builder::new().prefix("pmuc-guest-ram-").tempfile()
        }?;
        file.as_file().set_len(u64::from(memory_mib) << 20)?;
        Ok(MemoryConsole { file, read: 0 })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// What QEMU needs besides `-M <machine>,memory-backend=`[`backend`]:
    /// the backend itself.
    pub fn object_args(&self, memory_mib: u32) -> [OsString; 2] {
        let mut object = OsString::from(format!(
            "memory-backend-file,id={ID},size={memory_mib}M,share=on,mem-path="
        ));
        object.push(self.path());
        ["-object".into(), object]
    }

    /// Hands every new byte of the guest's console to `each`; says how many
    /// bytes the guest could not fit (0 until it fills the region).
    pub fn drain(&mut self, mut each: impl FnMut(&[u8])) -> u64 {
        let file = self.file.as_file();
        let word = |offset: usize| -> u64 {
            let mut bytes = [0u8; 8];
            match file.read_exact_at(&mut bytes, BASE + offset as u64) {
                Ok(()) => u64::from_le_bytes(bytes),
                Err(_) => 0,
            }
        };
        if word(0) != MAGIC {
            return 0;
        }
        let written = word(WRITTEN).min(REGION.capacity());
        if written > self.read {
            let mut text = vec![0u8; (written - self.read) as usize];
            if file
                .read_exact_at(&mut text, BASE + HEADER_BYTES as u64 + self.read)
                .is_ok()
            {
                self.read = written;
                each(&text);
            }
        }
        word(DROPPED)
    }
}

/// The `-M` value's suffix that puts the guest's RAM in the backend.
pub fn backend() -> String {
    format!("memory-backend={ID}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_fits_the_default_guest_and_the_console_cap() {
        assert_eq!(REGION.capacity(), CONSOLE_LIMIT as u64);
        const { assert!(MIN_MEMORY_MIB <= 128, "the default guest holds the region") };
        assert_eq!(REGION.word(), "pmuc.memcon=0x4000000,0x400040");
    }

    /// What a guest writes (the header, then text and counts in two steps)
    /// is read once each, and nothing before the magic.
    #[test]
    fn the_text_is_read_as_the_count_covers_it() {
        let mut console = MemoryConsole::create(MIN_MEMORY_MIB).unwrap();
        let file = console.file.as_file().try_clone().unwrap();
        let put = |offset: u64, bytes: &[u8]| file.write_all_at(bytes, BASE + offset).unwrap();
        let mut got = Vec::new();
        put(HEADER_BYTES as u64, b"not yet");
        put(WRITTEN as u64, &7u64.to_le_bytes());
        assert_eq!(console.drain(|b| got.extend_from_slice(b)), 0);
        assert!(got.is_empty(), "no magic, no text");
        put(0, &MAGIC.to_le_bytes());
        put(HEADER_BYTES as u64, b"hello\nwor");
        put(WRITTEN as u64, &6u64.to_le_bytes());
        console.drain(|b| got.extend_from_slice(b));
        assert_eq!(got, b"hello\n");
        put(WRITTEN as u64, &9u64.to_le_bytes());
        put(DROPPED as u64, &3u64.to_le_bytes());
        assert_eq!(console.drain(|b| got.extend_from_slice(b)), 3);
        assert_eq!(got, b"hello\nwor");
        console.drain(|b| got.extend_from_slice(b));
        assert_eq!(got, b"hello\nwor", "nothing twice");
        let path = console.path().to_path_buf();
        drop(console);
        assert!(!path.exists(), "removed with the boot");
    }
}
