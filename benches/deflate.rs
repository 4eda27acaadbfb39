//! permessage-deflate: the implementations ringws could use, on the JSON corpus of
//! `benches/json_corpus.py` (200 B, 1 KiB, 16 KiB), one message at a time and on its own, as
//! no context takeover requires. ringws's own path is `ringws_*`.
//!
//!     cargo bench --bench deflate                        # full measurement
//!     cargo bench --bench deflate -- --quick             # a quick look

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use libdeflater::{CompressionLvl, Compressor, Decompressor};
use ringws::protocol::deflate::codec;

const CORPUS: [(&str, &[u8]); 3] = [
    ("200", include_bytes!("corpus/json-200.json")),
    ("1024", include_bytes!("corpus/json-1024.json")),
    ("16384", include_bytes!("corpus/json-16384.json")),
];

/// zlib-rs with a sync flush, the tail removed: ringws's sender.
fn zlib_rs_compress(c: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> usize {
    c.reset();
    out.clear();
    c.compress_vec(payload, out, FlushCompress::Sync).unwrap();
    out.len() - 4
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_compress");
    for (name, payload) in CORPUS {
        group.throughput(Throughput::Bytes(payload.len() as u64));
        for level in [1u8, 6] {
            group.bench_with_input(
                BenchmarkId::new(format!("ringws_zlib_rs_sync_l{level}"), name),
                payload,
                |b, p| {
                    b.iter(|| codec::with_compressed(black_box(p), level, |c| c.map(<[u8]>::len)))
                },
            );
            let mut z = Compress::new(Compression::new(u32::from(level)), false);
            let mut out = Vec::with_capacity(payload.len() + 64);
            group.bench_with_input(
                BenchmarkId::new(format!("zlib_rs_vec_l{level}"), name),
                payload,
                |b, p| b.iter(|| zlib_rs_compress(&mut z, black_box(p), &mut out)),
            );
            let mut d = Compressor::new(CompressionLvl::new(i32::from(level)).unwrap());
            let mut out = vec![0u8; d.deflate_compress_bound(payload.len())];
            group.bench_with_input(
                BenchmarkId::new(format!("libdeflate_final_block_l{level}"), name),
                payload,
                |b, p| b.iter(|| d.deflate_compress(black_box(p), &mut out).unwrap()),
            );
        }
    }
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate_inflate");
    for (name, payload) in CORPUS {
        group.throughput(Throughput::Bytes(payload.len() as u64));
        let compressed = codec::with_compressed(payload, 1, |c| c.unwrap().to_vec());
        group.bench_with_input(
            BenchmarkId::new("ringws_libdeflate", name),
            &compressed,
            |b, m| {
                b.iter(|| {
                    let out = codec::inflate(black_box(m), 16 << 20).unwrap();
                    let n = out.len();
                    codec::recycle(out);
                    n
                })
            },
        );
        let mut framed = compressed.clone();
        framed.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut z = Decompress::new(false);
        let mut out = Vec::with_capacity(payload.len() * 2);
        group.bench_with_input(BenchmarkId::new("zlib_rs", name), &framed, |b, m| {
            b.iter(|| {
                z.reset(false);
                out.clear();
                z.decompress_vec(black_box(m), &mut out, FlushDecompress::Sync)
                    .unwrap();
                out.len()
            })
        });
        let mut d = Decompressor::new();
        let mut raw = vec![0u8; payload.len()];
        let mut final_framed = framed.clone();
        final_framed.extend_from_slice(&[0x03, 0x00]);
        group.bench_with_input(
            BenchmarkId::new("libdeflate_raw", name),
            &final_framed,
            |b, m| b.iter(|| d.deflate_decompress(black_box(m), &mut raw).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, compress, inflate);
criterion_main!(benches);
