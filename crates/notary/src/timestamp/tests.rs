//! Tests of the DER reader's pieces: times, lengths, integers.

use super::asn1::{
    generalized_time, integer_digits, rfc3339, small_uint, utc_time, Reader, Tlv, INTEGER,
};

#[test]
fn times() {
    let t = generalized_time(b"20241231080530.009Z", "t").unwrap();
    assert_eq!(t.unix_timestamp(), 1735632330);
    assert_eq!(t.millisecond(), 9);
    assert!(generalized_time(b"20241231080530", "t").is_err());
    assert!(generalized_time(b"20241231080530.Z", "t").is_err());
    assert!(generalized_time(b"20241331080530Z", "t").is_err());
    assert!(generalized_time(b"2024123108053aZ", "t").is_err());
    let u = utc_time(b"240618072142Z", "u").unwrap();
    assert_eq!(rfc3339(u), "2024-06-18T07:21:42Z");
    assert_eq!(utc_time(b"990101000000Z", "u").unwrap().year(), 1999);
}

#[test]
fn reader_refuses_bad_lengths() {
    for bad in [
        &[0x30, 0x80, 0x00, 0x00][..],
        &[0x30, 0x85, 1, 1, 1, 1, 1][..],
        &[0x30, 0x05, 0x01][..],
        &[0x1f, 0x01, 0x00][..],
        &[0x30][..],
    ] {
        assert!(Reader::new(bad).next("x").is_err());
    }
    let mut r = Reader::new(&[0x02, 0x81, 0x01, 0x05]);
    let t = r.next("x").unwrap();
    assert_eq!((t.tag, t.value, t.raw.len()), (0x02, &[5u8][..], 4));
    assert!(r.is_empty());
}

#[test]
fn integers() {
    let t = |v: &'static [u8]| Tlv {
        tag: INTEGER,
        value: v,
        raw: v,
    };
    assert_eq!(small_uint(&t(&[0x00, 0xff]), "i").unwrap(), 255);
    assert!(small_uint(&t(&[0xff]), "i").is_err());
    assert!(small_uint(&t(&[]), "i").is_err());
    assert!(small_uint(&t(&[1, 2, 3, 4, 5, 6, 7, 8]), "i").is_err());
    assert_eq!(integer_digits(&[0, 0, 1]), &[1]);
    assert_eq!(integer_digits(&[0]), &[0]);
}
