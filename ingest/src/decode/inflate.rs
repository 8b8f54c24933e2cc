//! libdeflate's one-piece gzip inflater behind a safe call. Its safe Rust binding cannot say
//! where a gzip member ends, so a file of several members would silently lose all but the
//! first; the C function called here does say. The only unsafe code in the workspace.
#![allow(unsafe_code)]

use libdeflate_sys as sys;
use std::ptr::NonNull;

/// A libdeflate decompressor (tens of KiB of tables), kept per thread and reused.
pub(crate) struct Inflater(NonNull<sys::libdeflate_decompressor>);

/// What inflating the first gzip member of a buffer came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// A whole member: `read` bytes of input (header to trailer) gave `written` bytes.
    Done { read: usize, written: usize },
    /// The output buffer is too small for it.
    NoRoom,
    /// Not valid gzip (bad header, corrupt or cut-off data, wrong CRC or size in the trailer).
    Bad,
}

impl Inflater {
    /// A new decompressor; `None` when the allocation fails.
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: no arguments; a null result is handled.
        NonNull::new(unsafe { sys::libdeflate_alloc_decompressor() }).map(Inflater)
    }

    /// Inflates the gzip member at the start of `gz` into `out` (emptied first), taking at most
    /// `room` bytes, and checks its CRC and size. The text is written into `out`'s spare
    /// capacity: zeroing the buffer first measured at 1% of ingest's CPU.
    pub(crate) fn gzip_member(&mut self, gz: &[u8], out: &mut Vec<u8>, room: usize) -> Member {
        out.clear();
        out.reserve_exact(room);
        let (mut read, mut written) = (0usize, 0usize);
        // SAFETY: the pointers and lengths are those of live buffers (`room` is within the
        // capacity just reserved); libdeflate reads at most `gz.len()` bytes, writes at most
        // `room` bytes, and keeps neither pointer. The decompressor is owned by `self`, and
        // `&mut self` keeps its use to one thread at a time.
        let res = unsafe {
            sys::libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                gz.as_ptr().cast(),
                gz.len(),
                out.spare_capacity_mut().as_mut_ptr().cast(),
                room,
                &mut read,
                &mut written,
            )
        };
        match res {
            sys::libdeflate_result_LIBDEFLATE_SUCCESS if written <= room => {
                // SAFETY: on success libdeflate has written exactly `written` bytes from the
                // start of the spare capacity.
                unsafe { out.set_len(written) };
                Member::Done { read, written }
            }
            sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Member::NoRoom,
            _ => Member::Bad,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor and freed once, here.
        unsafe { sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reports_where_each_member_ends() {
        let (a, b) = (gzip(b"first member\n"), gzip(b"second\n"));
        let both = [a.clone(), b].concat();
        let mut inf = Inflater::new().unwrap();
        let mut out = Vec::new();
        assert_eq!(
            inf.gzip_member(&both, &mut out, 64),
            Member::Done {
                read: a.len(),
                written: 13
            }
        );
        assert_eq!(out, b"first member\n");
    }

    #[test]
    fn small_output_and_damage_are_told_apart() {
        let gz = gzip(&b"0123456789".repeat(100));
        let mut inf = Inflater::new().unwrap();
        assert_eq!(inf.gzip_member(&gz, &mut Vec::new(), 999), Member::NoRoom);
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 6] ^= 1; // the trailer's CRC
        assert_eq!(inf.gzip_member(&bad, &mut Vec::new(), 1000), Member::Bad);
        assert_eq!(
            inf.gzip_member(&gz[..n / 2], &mut Vec::new(), 1000),
            Member::Bad
        );
    }
}
