//! An initramfs holding the runner as `/init`: a cpio archive in the "newc"
//! format Linux unpacks (Documentation/driver-api/early-userspace/
//! buffer-format.rst), written here rather than by a tool the host may lack.
//!
//! It holds the mount points init needs and `/dev/console`, which the kernel
//! opens for init's standard streams before any devtmpfs is mounted. A Xen
//! dom0's initramfs also holds a folder tree (Xen's toolstack and its
//! libraries, with their links) and loose files (the probe kernel its
//! domUs boot): [`Extra`].

use std::io::{self, Write};
use std::path::Path;

/// One entry: a directory, a character device, a file with its bytes, or a
/// symbolic link to a path.
enum Entry<'a> {
    Dir,
    CharDevice { major: u32, minor: u32 },
    File(&'a [u8]),
    Owned(Vec<u8>),
}

/// What an archive holds beside init and its mount points.
#[derive(Default)]
pub struct Extra<'a> {
    /// A folder whose files, folders and links land at the archive's root,
    /// with their permissions.
    pub tree: Option<&'a Path>,
    /// Files at these paths (relative, no `..`), mode 0644.
    pub files: Vec<(&'a str, &'a [u8])>,
}

/// The most a tree may add: Debian's dom0 toolstack is about 8 MiB.
pub const TREE_LIMIT: u64 = 256 << 20;
/// How deep a tree's folders may nest.
const TREE_DEPTH: usize = 16;

/// The archive for `init`, the runner's own bytes.
pub fn write(out: &mut impl Write, init: &[u8]) -> io::Result<()> {
    write_with(out, init, &Extra::default())
}

/// The archive for `init` with `extra` beside it.
pub fn write_with(out: &mut impl Write, init: &[u8], extra: &Extra) -> io::Result<()> {
    let mut entries: Vec<(String, u32, Entry)> = vec![
        ("dev".into(), 0o040755, Entry::Dir),
        ("dev/console".into(), 0o020600, Entry::CharDevice { major: 5, minor: 1 }),
        ("proc".into(), 0o040555, Entry::Dir),
        ("sys".into(), 0o040555, Entry::Dir),
        ("tmp".into(), 0o041777, Entry::Dir),
        ("root".into(), 0o040700, Entry::Dir),
        ("init".into(), 0o100755, Entry::File(init)),
    ];
    if let Some(tree) = extra.tree {
        let mut budget = TREE_LIMIT;
        walk(tree, "", 0, &mut budget, &mut entries)?;
    }
    for (path, bytes) in &extra.files {
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(io::Error::other(format!("`{path}` is not a plain relative path")));
        }
        entries.push(((*path).to_owned(), 0o100644, Entry::File(bytes)));
    }
    let mut written = 0u64;
    for (inode, (name, mode, entry)) in entries.iter().enumerate() {
        let (data, rdev) = match entry {
            Entry::Dir => (&[][..], (0, 0)),
            Entry::CharDevice { major, minor } => (&[][..], (*major, *minor)),
            Entry::File(bytes) => (*bytes, (0, 0)),
            Entry::Owned(bytes) => (bytes.as_slice(), (0, 0)),
        };
        written += record(out, inode as u32 + 1, *mode, name, data, rdev)?;
    }
    written += record(out, 0, 0, "TRAILER!!!", &[], (0, 0))?;
    // Pad the archive to a whole block, as cpio does.
    let tail = (512 - written % 512) % 512;
    out.write_all(&vec![0; tail as usize])
}

/// The entries under `dir`, named from `prefix`, folders before what they
/// hold, in name order; files are read within `budget`.
fn walk<'a>(
    dir: &Path,
    prefix: &str,
    depth: usize,
    budget: &mut u64,
    entries: &mut Vec<(String, u32, Entry<'a>)>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if depth > TREE_DEPTH {
        return Err(io::Error::other(format!(
            "{} nests more than {TREE_DEPTH} folders deep",
            dir.display()
        )));
    }
    let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let name = child.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::other(format!(
                "{}: a name that is not UTF-8",
                child.path().display()
            )));
        };
        let path = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(child.path())?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(child.path())?;
            let target = target.as_os_str().as_encoded_bytes().to_vec();
            entries.push((path, 0o120000 | 0o777, Entry::Owned(target)));
        } else if meta.is_dir() {
            entries.push((path.clone(), 0o040000 | mode, Entry::Dir));
            walk(&child.path(), &format!("{path}/"), depth + 1, budget, entries)?;
        } else if meta.is_file() {
            if meta.len() > *budget {
                return Err(io::Error::other(format!(
                    "{} takes the tree past {} MiB",
                    child.path().display(),
                    TREE_LIMIT >> 20
                )));
            }
            *budget -= meta.len();
            let bytes = crate::input_file::read_bytes(&child.path(), meta.len())
                .map_err(|e| io::Error::other(format!("{}: {e}", child.path().display())))?;
            entries.push((path, 0o100000 | mode, Entry::Owned(bytes)));
        } else {
            return Err(io::Error::other(format!(
                "{} is neither a file, a folder nor a link",
                child.path().display()
            )));
        }
    }
    Ok(())
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

    #[test]
    fn a_tree_keeps_its_folders_files_modes_and_links_and_loose_files_join_it() {
        use std::os::unix::fs::PermissionsExt;
        let tree = tempfile::tempdir().unwrap();
        let bin = tree.path().join("usr/lib/xen-4.17/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("xl"), b"xl's bytes").unwrap();
        std::fs::set_permissions(bin.join("xl"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", tree.path().join("ld.so")).unwrap();
        let extra = Extra {
            tree: Some(tree.path()),
            files: vec![("probe-kernel", b"\x7fELF kernel")],
        };
        let mut archive = Vec::new();
        write_with(&mut archive, b"init", &extra).unwrap();
        let entries = read(&archive);
        let find = |name: &str| entries.iter().find(|e| e.0 == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(find("usr/lib/xen-4.17").1 & 0o170000, 0o040000);
        let xl = find("usr/lib/xen-4.17/bin/xl");
        assert_eq!((xl.1, xl.3.as_slice()), (0o100755, &b"xl's bytes"[..]));
        let link = find("ld.so");
        assert_eq!(
            (link.1, link.3.as_slice()),
            (0o120777, &b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"[..])
        );
        assert_eq!(find("probe-kernel").3, b"\x7fELF kernel");
        // A folder comes before what it holds.
        let at = |name: &str| entries.iter().position(|e| e.0 == name).unwrap();
        assert!(at("usr") < at("usr/lib") && at("usr/lib/xen-4.17/bin") < at("usr/lib/xen-4.17/bin/xl"));
        let bad = Extra {
            tree: None,
            files: vec![("../escape", b"x")],
        };
        assert!(write_with(&mut Vec::new(), b"init", &bad).is_err());
    }
}
