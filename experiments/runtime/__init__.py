"""The resource experiment (docs/reference.md §12): every loss, JAX against the project's PyTorch
implementation, run as ``python -m experiments.runtime``.

What is measured. One batch of images x (celebA faces cropped and resized to 64×64, or greyscale 1×64×64)
is reconstructed by plain SGD (lr 1e-4) on an unconstrained image p, minimising D(sigmoid(p), x), with
the LossProvider defaults (reduction 'sum', random shift on, pretrained weights where they exist). Both
sides start from the same p and images (shared .npy files), take the same number of steps K per timed run,
and run in their own processes, one process per loss, colour space and precision:
  - JAX: the K steps are one compiled program (``lax.scan`` over value_and_grad and the update, PRNG keys
    split inside); it is compiled and run once (warm-up), then timed ``--repeats`` times or more, until
    ``--min-time`` seconds have passed;
  - PyTorch: an eager loop of zero_grad, forward, backward and ``torch.optim.SGD.step``; one warm-up run
    of K steps, then timed runs as on the JAX side (synchronised on CUDA); ``torch.set_num_threads`` = all
    cores.
ms/step = median over the repeats of (run time / K). Peak memory: on GPU/TPU the device allocator's peak
(JAX ``memory_stats()['peak_bytes_in_use']``, ``torch.cuda.max_memory_allocated()`` after the warm-up);
on CPU the worker's peak resident set size during the timed runs (the peak is reset after the warm-up,
so JAX's compiler is not counted), with its growth over the idle process (framework imported, nothing
loaded) in brackets. Precision (it matters for convolutions and matrix products on GPUs and TPUs):
'default' rows build both losses with precision='default', the backend's default (TF32 convolutions on
NVIDIA GPUs, as PyTorch's defaults and the original); 'float32' rows, run for the deep losses on GPU/TPU,
use precision='highest' on both sides and switch TF32 off in PyTorch.

Results go to ``benchmarks/results/``: runtime_<backend>_<date>.{md,csv,png} and latest_<backend>.md.

    python -m experiments.runtime                 # every loss, RGB and greyscale
    python -m experiments.runtime --quick         # smoke run: L2, batch 4, a few steps
    python -m experiments.runtime --losses Watson-DFT,SSIM --colorspaces RGB --steps 50

Missing converted weights are converted for this run from ``--original-weights`` (default
../shared/original_weights) into a temporary folder, else the loss runs with pretrained=False; a missing
ImageNet backbone of a Deeploss loss is replaced by a random one of the same shapes. Speed does not depend
on the weight values; the table's notes say which applies.

Modules: ``__main__`` (the flags), ``benchmark`` (the plan and its run), ``workers`` (worker processes),
``prepare`` (the setup worker, the loss of a job), ``jax_side`` and ``torch_side`` (the timed workers),
``measure`` (timing, memory, CPU load), ``report``, ``chart`` and ``targets`` (the result files), ``names``.
"""
