//! Our batched llama against candle's reference implementation, on the real SmolLM2 GGUF:
//! the same logits alone, and the same logits for each row of a left-padded batch.

mod common;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use gloss_ml::llama::{Llama, Weights};

fn content() -> (gguf_file::Content, std::fs::File) {
    let mut file = std::fs::File::open(common::smollm2_gguf()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    (content, file)
}

fn ours(weights: Weights) -> Llama {
    let (content, mut file) = content();
    Llama::load(&content, &mut file, &Device::Cpu, weights).unwrap()
}

/// candle's next-token logits after `prompt`, then after each of `more`.
fn reference(prompt: &[u32], more: &[u32]) -> Vec<Vec<f32>> {
    let (content, mut file) = content();
    let mut model = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    let run = |model: &mut ModelWeights, ids: &[u32], pos: usize| -> Vec<f32> {
        let input = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let out = model.forward(&input, pos).unwrap();
        out.squeeze(0).unwrap().to_vec1::<f32>().unwrap()
    };
    let mut out = vec![run(&mut model, prompt, 0)];
    for (i, &t) in more.iter().enumerate() {
        out.push(run(&mut model, &[t], prompt.len() + i));
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(xs: &[f32]) -> usize {
    (0..xs.len()).fold(0, |b, i| if xs[i] > xs[b] { i } else { b })
}

const PROMPTS: [&[u32]; 3] = [
    &[
        1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 2, 198, 1, 4093, 198,
    ],
    &[1, 4093, 198, 19556, 17, 2, 198, 1, 520, 9531, 198],
    &[
        1, 4093, 198, 504, 3458, 282, 4649, 314, 2, 198, 1, 520, 9531, 198, 504, 3458,
    ],
];

#[test]
fn alone_it_computes_what_candle_computes() {
    let model = ours(Weights::Quantized);
    assert!(!model.f32_weights());
    let prompt = PROMPTS[0];
    let expected = reference(prompt, &[30, 40]);
    let (first, mut cache) = model.prefill(&[prompt.to_vec()]).unwrap();
    let second = model.step(&mut cache, &[30]).unwrap();
    let third = model.step(&mut cache, &[40]).unwrap();
    for (got, want) in [&first[0], &second[0], &third[0]]
        .into_iter()
        .zip(&expected)
    {
        assert!(max_diff(got, want) < 1e-3, "{}", max_diff(got, want));
    }
    assert_eq!(cache.len(), prompt.len() + 2);
}

#[test]
fn each_row_of_a_padded_batch_computes_what_it_computes_alone() {
    let model = ours(Weights::Auto);
    assert!(model.f32_weights(), "a 135M model is expanded on the CPU");
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let (batch, mut cache) = model.prefill(&prompts).unwrap();
    let next = model.step(&mut cache, &[30, 31, 32]).unwrap();
    let ahead = model.look_ahead(&mut cache.clone(), &[50, 60]).unwrap();
    for (r, prompt) in prompts.iter().enumerate() {
        let (alone, mut own) = model.prefill(std::slice::from_ref(prompt)).unwrap();
        assert!(
            max_diff(&batch[r], &alone[0]) < 2e-3,
            "row {r}: {}",
            max_diff(&batch[r], &alone[0])
        );
        assert_eq!(argmax(&batch[r]), argmax(&alone[0]));
        let step = model.step(&mut own, &[30 + r as u32]).unwrap();
        assert!(max_diff(&next[r], &step[0]) < 2e-3, "row {r} step");
        let own_ahead = model.look_ahead(&mut own, &[50, 60]).unwrap();
        for j in 0..2 {
            assert!(
                max_diff(&ahead[r][j], &own_ahead[0][j]) < 2e-3,
                "row {r} ahead {j}"
            );
        }
    }
    // Expanded weights give the quantized model's answer.
    let reference = reference(PROMPTS[2], &[]);
    let (alone, _) = model.prefill(&[PROMPTS[2].to_vec()]).unwrap();
    assert_eq!(argmax(&alone[0]), argmax(&reference[0]));
}

#[test]
fn empty_prompts_and_ragged_blocks_are_refused() {
    let model = ours(Weights::Auto);
    assert!(model.prefill(&[vec![1, 2], vec![]]).is_err());
    assert!(model.prefill(&[]).is_err());
    let (_, mut cache) = model.prefill(&[vec![1, 2], vec![3]]).unwrap();
    let err = model.step(&mut cache, &[5]).unwrap_err();
    assert!(err.to_string().contains("1 rows for a batch of 2"), "{err}");
}
