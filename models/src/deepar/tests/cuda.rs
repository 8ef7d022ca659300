//! The CUDA path, compiled with `--features cuda` and run on a machine with an NVIDIA GPU
//! (`scripts/cuda-check.sh`): the cell candle composes on the GPU agrees with the fused CPU
//! cell, training on the GPU follows the CPU's, and a model trained there forecasts the same
//! after loading on the CPU. Without a GPU these tests fail: they never pass vacuously.

use candle_core::Device;
use serde_json::json;

use super::super::cell;
use super::super::*;
use super::likelihood::{CellCase, assert_cells_agree};
use super::training::{FEW_PATHS, backtest_beating_seasonal_naive, save_and_load, small_model_on};

fn gpu() -> Device {
    Device::new_cuda(0).expect("CUDA device 0: these tests need an NVIDIA GPU and its driver")
}

#[test]
fn the_cell_on_the_gpu_matches_the_fused_cpu_cell() {
    let device = gpu();
    assert!(!device.is_cpu());
    let (on_gpu, on_cpu) = (CellCase::new(&device), CellCase::new(&Device::Cpu));
    for bias in 0..2 {
        assert_cells_agree(
            "gpu vs cpu",
            &on_gpu.run(bias, cell::lstm_cell),
            &on_cpu.run(bias, cell::lstm_cell),
        );
    }
}

/// Weights, windows, dropout masks and draws all come from the host's seeded generator, so
/// the GPU sees the same run as the CPU and only rounding (cuBLAS's order of summation) differs.
#[test]
fn training_on_the_gpu_follows_the_cpu_and_its_model_forecasts_the_same_on_the_cpu() {
    let device = gpu();
    let (on_gpu, gpu_report, panel) = small_model_on(&device, 12, 3, json!({}));
    let (_, cpu_report, _) = small_model_on(&Device::Cpu, 12, 3, json!({}));
    let (g, c) = (gpu_report.epochs[0].loss, cpu_report.epochs[0].loss);
    assert!(
        (g - c).abs() < 1e-3 * c.abs().max(1.0),
        "first epoch's loss: gpu {g}, cpu {c}"
    );

    backtest_beating_seasonal_naive(&on_gpu, &panel);

    let (_dir, on_cpu) = save_and_load(&on_gpu, &Device::Cpu);
    let from_gpu = forecast(&on_gpu, &panel, FEW_PATHS, "panel").unwrap();
    let from_cpu = forecast(&on_cpu, &panel, FEW_PATHS, "panel").unwrap();
    for (index, (a, b)) in from_gpu.iter().zip(&from_cpu).enumerate() {
        assert_eq!(a.start, b.start);
        let level = b.mean().iter().map(|v| v.abs()).sum::<f32>() / b.mean().len() as f32;
        for (x, y) in a.mean().iter().zip(b.mean()) {
            assert!(
                (x - y).abs() < 1e-3 * level,
                "series {index}: mean forecast {x} on the gpu, {y} on the cpu"
            );
        }
    }
}
