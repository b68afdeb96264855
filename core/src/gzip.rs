//! Gzip bodies: the capped decompression of an upload, and the decoding of a stored body.
//!
//! Ingest decompresses what the recorder sent with [`gunzip_capped`] (refusing zip bombs at the
//! configured cap); the storage engines keep the gzip as sent and decode it when it is read
//! back, with [`unpack`]. Both first try [`gunzip_whole`] (libdeflate in one call), so a body
//! stored after passing it at ingest is readable.

use std::cell::RefCell;
use std::io::Read;

use bytes::{Buf, Bytes};
use flate2::bufread::GzDecoder;

use crate::Error;

/// Largest batch a stored gzip body may expand to when read back.
pub const MAX_STORED_BATCH: usize = 64 * 1024 * 1024;

/// Deflate cannot expand data more than about 1032 times.
pub const MAX_DEFLATE_RATIO: usize = 1032;

thread_local! {
    /// One libdeflate decompressor per thread (its tables are allocated once).
    static INFLATE: RefCell<libdeflater::Decompressor> = RefCell::new(libdeflater::Decompressor::new());

    /// One gzip decoder per thread, reset for every body: its inflate state and window are
    /// allocated once per thread instead of once per request.
    static GUNZIP: RefCell<Option<GzDecoder<bytes::buf::Reader<Bytes>>>> = const { RefCell::new(None) };
}

/// The uncompressed size a gzip body's trailer announces (modulo 2^32, as sent: untrusted),
/// 0 when the body is too short to have one.
pub fn gzip_announced_size(body: &[u8]) -> usize {
    body.len()
        .checked_sub(4)
        .and_then(|at| body.get(at..))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize)
}

/// Decompresses a whole gzip body in one libdeflate call when the size its trailer announces
/// is at most `cap` (the caller's caps, also bounding what the trailer may make it allocate),
/// about twice as fast as streaming inflate on recorder-sized bodies. `None` for whatever it
/// does not take (a trailer that lies, several members, corrupt data, a header CRC, which
/// libdeflate skips without checking): the caller then decides with the streaming decoder.
/// Ingest and reads both try it first, so a body stored after passing it is readable.
pub fn gunzip_whole(body: &[u8], cap: usize) -> Option<Vec<u8>> {
    const FHCRC: u8 = 0x02;
    let flags = *body.get(3)?;
    let announced = gzip_announced_size(body);
    if flags & FHCRC != 0 || announced == 0 || announced > cap {
        return None;
    }
    let mut out = vec![0; announced];
    (INFLATE.with_borrow_mut(|d| d.gzip_decompress(body, &mut out)) == Ok(announced)).then_some(out)
}

/// Decodes a stored body to MessagePack bytes (capped at [`MAX_STORED_BATCH`]).
pub fn unpack(bytes: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Error> {
    if !gzip {
        return Ok(bytes);
    }
    if let Some(out) = gunzip_whole(&bytes, MAX_STORED_BATCH.min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO))) {
        return Ok(out);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(MAX_STORED_BATCH as u64 + 1)
        .read_to_end(&mut out)
        .map_err(Error::Gzip)?;
    if out.len() > MAX_STORED_BATCH {
        return Err(Error::TooLarge { cap: MAX_STORED_BATCH });
    }
    Ok(out)
}

/// Decompresses gzip, refusing to produce more than `max` bytes (zip bombs stop there):
/// [`Error::Gzip`] for data that is not gzip, [`Error::TooLarge`] past the cap.
///
/// The output is sized up front from the size the gzip trailer announces (the size modulo
/// 2^32, as sent, so untrusted): capped by `max` and by what deflate can produce from this
/// body, it only saves the regrowing copies and never lets a small body reserve much memory.
/// The body is read in place (`bufread`), without the 32 KB copy buffer of `read::GzDecoder`.
pub fn gunzip_capped(body: &Bytes, max: usize) -> Result<Vec<u8>, Error> {
    let announced = gzip_announced_size(body);
    let cap = announced.min(max).min(body.len().saturating_mul(MAX_DEFLATE_RATIO));
    // The whole body at once when the announced size is within the caps; whatever that does
    // not take goes through the streaming decoder below.
    if let Some(out) = gunzip_whole(body, cap) {
        return Ok(out);
    }
    let mut out = Vec::with_capacity(cap + 1);
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let read = GUNZIP.with_borrow_mut(|slot| {
        let input = body.clone().reader();
        let decoder = match slot {
            Some(d) => {
                d.reset(input);
                d
            }
            None => slot.insert(GzDecoder::new(input)),
        };
        let read = Read::by_ref(decoder).take(limit).read_to_end(&mut out);
        // Let go of the body now rather than at the next request.
        decoder.reset(Bytes::new().reader());
        read
    });
    read.map_err(Error::Gzip)?;
    if out.len() > max {
        return Err(Error::TooLarge { cap: max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).expect("in memory");
        Bytes::from(gz.finish().expect("in memory"))
    }

    #[test]
    fn gunzip_returns_the_original_bytes() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        assert_eq!(gunzip_capped(&gzip(&data), 1 << 20).expect("valid gzip"), data);
    }

    #[test]
    fn a_lying_size_trailer_reserves_no_more_than_deflate_can_produce() {
        let mut body = gzip(b"hello").to_vec();
        let n = body.len();
        body[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let body = Bytes::from(body);
        // The trailer is checked after the data: the lie is an error, found without having
        // reserved 4 GB on its word.
        let e = gunzip_capped(&body, usize::MAX).expect_err("size mismatch");
        assert!(matches!(e, Error::Gzip(_)), "{e}");
        let body = gzip(&[0u8; 4096]);
        let out = gunzip_capped(&body, 1 << 30).expect("valid gzip");
        assert!(out.capacity() <= body.len() * MAX_DEFLATE_RATIO + 1);
    }

    #[test]
    fn bodies_the_whole_buffer_inflater_refuses_get_the_streaming_answer() {
        // Two gzip members back to back: the streaming decoder reads the first, as before.
        let mut two = gzip(b"first member").to_vec();
        two.extend_from_slice(&gzip(b"second"));
        assert_eq!(gunzip_capped(&Bytes::from(two), 1 << 20).expect("first member"), b"first member");
        // A trailer announcing fewer bytes than the data holds: refused as bad gzip.
        let mut short = gzip(b"hello world").to_vec();
        let n = short.len();
        short[n - 4..].copy_from_slice(&5u32.to_le_bytes());
        let e = gunzip_capped(&Bytes::from(short), 1 << 20).expect_err("size mismatch");
        assert!(matches!(e, Error::Gzip(_)), "{e}");
        // A header CRC (which libdeflate would skip unchecked) that is wrong: refused.
        let plain = gzip(b"hello world").to_vec();
        let mut with_crc = plain[..10].to_vec();
        with_crc[3] |= 0x02;
        with_crc.extend([0xde, 0xad]);
        with_crc.extend(&plain[10..]);
        let e = gunzip_capped(&Bytes::from(with_crc), 1 << 20).expect_err("bad header crc");
        assert!(matches!(e, Error::Gzip(_)), "{e}");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        let body = gzip(&vec![0u8; 1 << 20]);
        let e = gunzip_capped(&body, 64 * 1024).expect_err("over the cap");
        assert!(matches!(e, Error::TooLarge { cap: 65_536 }), "{e}");
        let e = gunzip_capped(&body.slice(..body.len() / 2), 1 << 21).expect_err("truncated");
        assert!(matches!(e, Error::Gzip(_)), "{e}");
    }

    #[test]
    fn the_reused_decoder_starts_afresh_after_every_body_good_or_bad() {
        let a: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let b = b"second body".to_vec();
        assert_eq!(gunzip_capped(&gzip(&a), 1 << 20).expect("first"), a);
        let truncated = gzip(&a);
        assert!(gunzip_capped(&truncated.slice(..truncated.len() - 9), 1 << 20).is_err());
        assert!(gunzip_capped(&Bytes::from_static(b"not gzip at all"), 1 << 20).is_err());
        assert!(gunzip_capped(&gzip(&a), 100).is_err(), "over the cap mid-stream");
        assert_eq!(gunzip_capped(&gzip(&b), 1 << 20).expect("after errors"), b);
        assert_eq!(gunzip_capped(&gzip(&a), 1 << 20).expect("again"), a);
    }

    #[test]
    fn stored_bodies_unpack_to_what_was_compressed_and_corrupt_ones_are_errors() {
        let data = b"stored batch".to_vec();
        assert_eq!(unpack(gzip(&data).to_vec(), true).expect("gzip"), data);
        assert_eq!(unpack(data.clone(), false).expect("raw"), data);
        let mut corrupt = gzip(&data).to_vec();
        corrupt.truncate(corrupt.len() - 6);
        assert!(matches!(unpack(corrupt, true), Err(Error::Gzip(_))));
    }
}
