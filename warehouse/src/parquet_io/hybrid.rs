//! Parquet's RLE / bit-packed hybrid encoding, for dictionary codes and definition levels.
//! See <https://parquet.apache.org/docs/file-format/data-pages/encodings/>.

/// Bits needed for values up to `max`.
pub(super) fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// Appends `values` (each below 2^`width`): runs of eight or more equal values as RLE runs,
/// the rest bit-packed in groups of eight. Only the last group may be padded (readers stop
/// at the page's value count), so a bit-packed run ends at a multiple of eight or at the end.
pub(super) fn encode(values: &[u32], width: u8, out: &mut Vec<u8>) {
    let run_at = |i: usize| {
        let v = values[i];
        values[i..].iter().take_while(|&&x| x == v).count()
    };
    let mut i = 0;
    while i < values.len() {
        let run = run_at(i);
        if run >= 8 {
            varint((run as u64) << 1, out);
            out.extend_from_slice(&values[i].to_le_bytes()[..usize::from(width).div_ceil(8)]);
            i += run;
            continue;
        }
        let start = i;
        i = (i + 8).min(values.len());
        while i < values.len() && run_at(i) < 8 {
            i = (i + 8).min(values.len());
        }
        pack(&values[start..i], width, out);
    }
}

/// One bit-packed run of `values`, padded with zeros to whole groups of eight.
fn pack(values: &[u32], width: u8, out: &mut Vec<u8>) {
    let groups = values.len().div_ceil(8);
    varint(((groups as u64) << 1) | 1, out);
    let (mut acc, mut bits) = (0u64, 0u32);
    for k in 0..groups * 8 {
        acc |= u64::from(values.get(k).copied().unwrap_or(0)) << bits;
        bits += u32::from(width);
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
}

/// ULEB128, as run headers are written.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
