//! Criterion bench of random Othello games with boards, players and legal sets (SPEC's games
//! file in memory): games/s on one thread and on every core, and the bare engine (perft 6) for
//! scale. The issue asks for ≥ 50,000 games/s with boards on the 2-core machine.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shaderlens::games::generate;
use shaderlens::games::othello::{perft, Board};

const GAMES: usize = 20_000;

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
    group.throughput(Throughput::Elements(perft(&Board::start(), 6)));
    group.bench_function("perft_6", |b| b.iter(|| perft(&Board::start(), 6)));
    group.finish();
}

criterion_group!(benches, games);
criterion_main!(benches);
