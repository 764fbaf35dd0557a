//! Criterion bench of random Othello games with boards, players and legal sets (SPEC's games
//! file in memory), in games/s: a big set (the CLI's case, fresh memory) on one thread and on every
//! core; trainer-sized batches of 256 on one thread (memory reused by the allocator); the
//! background stream a trainer reads; and the bare engine (perft 6) for scale. The issue asks for
//! ≥ 50,000 games/s with boards on the 2-core machine.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shaderlens::games::othello::{perft, Board};
use shaderlens::games::{generate, GameStream};

const GAMES: usize = 20_000;
const BATCH: usize = 256;
const STREAMED_BATCHES: usize = 40;

fn games(c: &mut Criterion) {
    let mut group = c.benchmark_group("othello");
    group.sample_size(10);
    group.throughput(Throughput::Elements(GAMES as u64));
    let cores = shaderlens::games::dataset::default_threads();
    for threads in [1, cores] {
        group.bench_function(format!("games_with_boards/{GAMES}/threads_{threads}"), |b| {
            let mut seed = 0;
            b.iter(|| {
                seed += 1;
                generate(seed, 0, GAMES, threads).expect("games")
            })
        });
    }
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("batch/{BATCH}/threads_1"), |b| {
        let mut first = 0;
        b.iter(|| {
            first += BATCH as u64;
            generate(1, first, BATCH, 1).expect("games")
        })
    });
    group.throughput(Throughput::Elements((BATCH * STREAMED_BATCHES) as u64));
    group.bench_function(format!("stream/{BATCH}x{STREAMED_BATCHES}/workers_{cores}"), |b| {
        b.iter(|| {
            let mut stream = GameStream::new(2, 0, BATCH, cores, 4).expect("stream");
            for _ in 0..STREAMED_BATCHES {
                stream.next_batch().expect("batch");
            }
        })
    });
    group.throughput(Throughput::Elements(perft(&Board::start(), 6)));
    group.bench_function("perft_6", |b| b.iter(|| perft(&Board::start(), 6)));
    group.finish();
}

criterion_group!(benches, games);
criterion_main!(benches);
