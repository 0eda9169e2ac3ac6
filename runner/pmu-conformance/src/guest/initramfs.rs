//! An initramfs holding the runner as `/init`: a cpio archive in the "newc"
//! format Linux unpacks (Documentation/driver-api/early-userspace/
//! buffer-format.rst), written here rather than by a tool the host may lack.
//!
//! It holds the mount points init needs and `/dev/console`, which the kernel
//! opens for init's standard streams before any devtmpfs is mounted.

use std::io::{self, Write};

/// One entry: a directory, a character device, or a file with its bytes.
enum Entry<'a> {
    Dir,
    CharDevice { major: u32, minor: u32 },
    File(&'a [u8]),
}

/// The archive for `init`, the runner's own bytes.
pub fn write(out: &mut impl Write, init: &[u8]) -> io::Result<()> {
    let entries: [(&str, u32, Entry); 7] = [
        ("dev", 0o040755, Entry::Dir),
        ("dev/console", 0o020600, Entry::CharDevice { major: 5, minor: 1 }),
        ("proc", 0o040555, Entry::Dir),
        ("sys", 0o040555, Entry::Dir),
        ("tmp", 0o041777, Entry::Dir),
        ("root", 0o040700, Entry::Dir),
        ("init", 0o100755, Entry::File(init)),
    ];
    let mut written = 0u64;
    for (inode, (name, mode, entry)) in entries.iter().enumerate() {
        let (data, rdev) = match entry {
            Entry::Dir => (&[][..], (0, 0)),
            Entry::CharDevice { major, minor } => (&[][..], (*major, *minor)),
            Entry::File(bytes) => (*bytes, (0, 0)),
        };
        written += record(out, inode as u32 + 1, *mode, name, data, rdev)?;
    }
    written += record(out, 0, 0, "TRAILER!!!", &[], (0, 0))?;
    // Pad the archive to a whole block, as cpio does.
    let tail = (512 - written % 512) % 512;
    out.write_all(&vec![0; tail as usize])
}

/// One header, name and body, each padded to four bytes; returns the bytes written.
fn record(out: &mut impl Write, inode: u32, mode: u32, name: &str, data: &[u8], rdev: (u32, u32)) -> io::Result<u64> {
    let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
    let fields = [
        inode,
        mode,
        0,
        0,
        nlink,
        0,
        data.len() as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    let mut header = String::from("070701");
    for f in fields {
        header.push_str(&format!("{f:08X}"));
    }
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let named = 110 + name.len() as u64 + 1;
    let pad = (4 - named % 4) % 4;
    out.write_all(&vec![0; pad as usize])?;
    out.write_all(data)?;
    let data_pad = (4 - data.len() as u64 % 4) % 4;
    out.write_all(&vec![0; data_pad as usize])?;
    Ok(named + pad + data.len() as u64 + data_pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back: name, mode, rdev, data.
    type Read = (String, u32, (u32, u32), Vec<u8>);

    /// Reads a newc archive back.
    fn read(mut bytes: &[u8]) -> Vec<Read> {
        let mut out = Vec::new();
        loop {
            assert_eq!(&bytes[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
            };
            let (mode, size, rdev, namesize) = (field(1), field(6) as usize, (field(9), field(10)), field(11) as usize);
            let name = String::from_utf8(bytes[110..110 + namesize - 1].to_vec()).unwrap();
            let body = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[body..body + size].to_vec();
            bytes = &bytes[body + size.div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                assert!(bytes.iter().all(|b| *b == 0), "only padding after the trailer");
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn the_archive_holds_init_the_mount_points_and_the_console() {
        let init = b"\x7fELF and the rest of a runner".to_vec();
        let mut archive = Vec::new();
        write(&mut archive, &init).unwrap();
        assert_eq!(archive.len() % 512, 0);
        let entries = read(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "proc", "sys", "tmp", "root", "init"]);
        let console = &entries[1];
        assert_eq!((console.1 & 0o170000, console.2), (0o020000, (5, 1)));
        let file = &entries[6];
        assert_eq!((file.1, &file.3), (0o100755, &init));
    }
}
