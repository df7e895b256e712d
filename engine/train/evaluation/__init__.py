"""How a trained model is judged and used: metrics, samples and the judges that score them.

- `metrics`, `sr_metrics`, `color`, `bleu`: per-batch metrics, PSNR/SSIM on Y, BLEU
- `digit_fd`: the Fréchet distance of generated digits in a digit classifier's features
- `sampling`: sample grids and the sample metrics of `engine eval` (`engine sample`)
- `translator`, `decoding`: an encoder-decoder spec run token by token, greedy or beam search
- `infer`: a trained model on image files (`engine infer`)
- `diffusion`: noise schedules and the DDPM / DDIM samplers
"""
