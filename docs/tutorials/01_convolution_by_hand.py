# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Convolution by hand
#
# The workshop's first part, "Convolution Neural Network", explains a Conv2D layer with
# small grids of numbers: a dot product of a kernel with every window of the input, a
# depth of 1 (MNIST) or 3 (RGB), hand-made kernels (blur, sharpen, edges), stride,
# padding, the output-size formula and pooling. This tutorial recomputes every one of
# those numbers with `neuralab.mechanics` (plain NumPy, no framework), checks them
# against PyTorch, applies the kernels to a real photograph, and ends with a small CNN
# built and trained from these NumPy pieces alone.
#
# **Runtime on a 2-core CPU:** about 6 s (full), 5 s (small budget:
# `NEURALAB_TUTORIAL_BUDGET=small`). No dataset to download.
#
# Run it as a script (`python docs/tutorials/01_convolution_by_hand.py`) or as a
# notebook (`jupytext --to notebook docs/tutorials/01_convolution_by_hand.py`).

# %% [markdown]
# ## Setup

# %%
import matplotlib.cbook
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from _common import SMALL, budget, out_dir, save_results, show
from neuralab.data.pictures import read_image
from neuralab.mechanics import (
    KERNELS,
    apply_kernel,
    closest_kernels,
    conv2d_forward,
    conv_shape,
    output_hw,
    pool2d,
)
from neuralab.mechanics.demo import worked
from neuralab.mechanics.kernels import default_scale, to_uint8
from neuralab.mechanics.scratch_cnn import train_digits
from neuralab.reports import plots

OUT = out_dir("01-convolution")
results = {}
print("budget:", "small" if SMALL else "full", "| outputs in", OUT)

# %% [markdown]
# ## Prepare the data: the slides' grids
#
# ### The dot product
#
# Slide "Hyper-Parameters of Conv2D: filter & kernel - dot product": the 3x3 input 0..8
# and the 2x2 kernel [[0, 1], [2, 3]] give [[19, 25], [37, 43]]. Each output cell is the
# sum of the element-wise products of the kernel with one window:
# 0x0 + 1x1 + 3x2 + 4x3 = 19. `worked("dot-product")` prints every window.

# %%
dot = worked("dot-product")[0]
print("\n".join(dot.lines))
results["dot_product"] = dot.result

# %% [markdown]
# The "concise" half: PyTorch's `conv2d` is the same cross-correlation (neither flips the
# kernel). Shapes are NCHW: (batch, channels, height, width).

# %%
x = torch.arange(9.0).reshape(1, 1, 3, 3)
k = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
torch_out = F.conv2d(x, k)[0, 0].numpy()
print(torch_out)
assert np.array_equal(torch_out, dot.result)

# %% [markdown]
# ### The convolved feature, stride and padding
#
# Slide "Convolved Feature with filter": a 5x5 binary image and the 3x3 kernel written as
# the x1/x0 subscripts. The top-left window gives 4. With stride (2, 2) the window jumps
# two cells; with padding P=2 the 5x5 image becomes 9x9, so the border pixels are covered
# as often as the middle ones.

# %%
for key in ("convolved-feature", "stride", "padding"):
    example = worked(key)[0]
    print(f"--- {example.title} (slide: {example.slide})")
    print("\n".join(example.lines))
    results[key.replace("-", "_")] = example.result

# %% [markdown]
# ### Depth: one filter over an RGB image
#
# A Conv2D filter spans the whole depth: one kernel per channel, the three channel sums
# added, plus one bias. The slide "Formulation to compute the output size" shows the
# result -25 for the top-left corner of a padded RGB image.

# %%
depth = worked("depth")[0]
print("\n".join(depth.lines))
results["depth"] = depth.result

# %% [markdown]
# ## Build the model: kernels on a real image
#
# In a CNN the kernels are learned; before CNNs people designed them by hand. These are
# the workshop's (blur, sharpen, the two Sobel edge detectors) and a few more.

# %%
for name, kernel in KERNELS.items():
    print(f"{name:>10}: {np.round(kernel, 3).tolist()}")

# %% [markdown]
# A real photograph: Grace Hopper, from the sample data that ships with matplotlib, read
# as grayscale (depth 1), as MNIST would be.

# %%
photo_path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
photo = read_image(photo_path, "L")  # (H, W) uint8
print("photo", photo.shape, photo.dtype)

names = ["identity", "box-blur", "sharpen", "sobel-x", "sobel-y", "laplacian"]
filtered = {}
for name in names:
    values = apply_kernel(photo, KERNELS[name], padding="same")  # (H, W) floats
    filtered[name] = to_uint8(values, default_scale(KERNELS[name]))
fig = plots.image_grid(np.stack(list(filtered.values())), names, columns=3)
fig.suptitle("The workshop's kernels on a photograph (edge kernels shown as |value|)")
fig.tight_layout(rect=(0, 0, 1, 0.95))
show(fig, OUT / "kernels_on_photo.png")
results["photo_shape"] = list(photo.shape)

# %% [markdown]
# The Sobel x kernel responds to vertical edges, the Sobel y kernel to horizontal ones
# (the slide calls them "Vertical" and "Horizontal"). A flat region gives 0: both sum to 0.
#
# ### Stride and padding change the size
#
# `padding="valid"` (no zeros) shrinks the image by K - 1; `"same"` with stride 1 keeps
# it; stride 2 halves it.

# %%
sizes = {}
for padding in ("valid", "same"):
    for stride in (1, 2):
        out = apply_kernel(photo, KERNELS["sobel-x"], stride=stride, padding=padding)
        sizes[f"{padding}, stride {stride}"] = list(out.shape)
        print(f"padding={padding:<5} stride={stride}: {photo.shape} -> {out.shape}")
results["photo_sizes"] = sizes

# %% [markdown]
# ### The output-size formula
#
# $$W_{out} = \left\lfloor \frac{W_{in} - K + 2P}{S} \right\rfloor + 1$$
#
# on every setting the slides use, and then on the Keras line of the slide
# "How to add Conv2D in keras?" with F=16, K=5, S=2, padding="same" on a 32x32x3 image.

# %%
size = worked("output-size")[0]
print("\n".join(size.lines))
results["output_sizes"] = size.result

# %% [markdown]
# The formula against PyTorch on a grid of sizes, kernels, strides and paddings:

# %%
checked = 0
for w_in in range(3, 12):
    for k_size in (1, 2, 3, 5):
        for s in (1, 2, 3):
            for p in (0, 1, 2):
                if k_size > w_in + 2 * p:
                    continue
                (h_out, w_out), _ = output_hw((w_in, w_in), k_size, s, p)
                torch_shape = F.conv2d(torch.zeros(1, 1, w_in, w_in), torch.zeros(1, 1, k_size, k_size),
                                       stride=s, padding=p).shape
                assert (h_out, w_out) == tuple(torch_shape[2:]), (w_in, k_size, s, p)
                checked += 1
print(f"formula == PyTorch on {checked} settings")
results["formula_checks"] = checked

keras = conv_shape((3, 32, 32), 16, 5, 2, "same")
print("\n".join(keras.explain()))
results["keras_same_stride2"] = {"out_chw": keras.out_chw, "params": keras.params}

# %% [markdown]
# ### Pooling
#
# A pooling layer has no weights: it keeps the maximum (or the mean) of each window,
# usually 2x2 with stride 2, halving each side. First on the padding slide's 5x5 image
# (the last row and column do not fill a window and are dropped):

# %%
pooling = worked("pooling")[0]
print("\n".join(pooling.lines))
results["pooling"] = pooling.result

# %% [markdown]
# Then on the edge map of the photograph, three times in a row, as a CNN's pooling
# layers would: max pooling keeps the strong edges, average pooling blurs them away.
# The slide's "Max Pooling performs a lot better than Average Pooling" is a common
# experience, not a rule: LeNet-5 (tutorial 3) pools by averaging, GoogLeNet ends in a
# global average pool, and which works better depends on the task.

# %%
edges = np.abs(apply_kernel(photo, KERNELS["sobel-x"], padding="same"))[None, None]  # (1, 1, H, W)
panels, titles = [], []
for mode in ("max", "avg"):
    x = edges
    for _ in range(3):
        x = pool2d(x, 2, mode=mode)
    panels.append(to_uint8(x[0, 0], "minmax"))
    titles.append(f"{mode} pool 2x2, 3 times: {x.shape[2]}x{x.shape[3]}")
results["pooled_shape"] = list(panels[0].shape)
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, img, title in zip(axes, [to_uint8(edges[0, 0], "minmax"), *panels], ["|sobel-x|", *titles]):
    ax.imshow(img, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
show(fig, OUT / "pooling.png")

# %% [markdown]
# ## Train: a CNN from these pieces
#
# `ScratchCNN` stacks the same NumPy functions into Conv2D(16) -> ReLU -> MaxPool2D ->
# Conv2D(32) -> ReLU -> MaxPool2D -> Flatten -> Dense(10) and trains it with forward and
# backpropagation written by hand (no autograd) on scikit-learn's 8x8 digits. The summary
# comes first, as in Keras.

# %%
run = train_digits(epochs=budget(6, 2), seed=0, log=print)
print(f"test accuracy {run['test_accuracy'] * 100:.1f}% on {run['n_test']} digits, "
      f"{run['seconds']:.1f} s of training")
results["scratch_cnn"] = {"test_accuracy": run["test_accuracy"], "epochs": len(run["history"]),
                          "loss": run["history"]}

# %% [markdown]
# Every conv layer above is `conv2d_forward`; one last check that it equals PyTorch on a
# random batch with several channels, stride 2 and padding 1:

# %%
rng = np.random.default_rng(0)
xb, wb, bb = rng.normal(size=(2, 3, 9, 9)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
ours, _ = conv2d_forward(xb, wb, bb, stride=2, padding=1)
theirs = F.conv2d(torch.from_numpy(xb), torch.from_numpy(wb), torch.from_numpy(bb), stride=2, padding=1).numpy()
results["max_abs_diff_vs_torch"] = float(np.abs(ours - theirs).max())
print("max |NumPy - PyTorch| =", results["max_abs_diff_vs_torch"])

# %% [markdown]
# ## Evaluate: what did the filters learn?
#
# The first layer's 16 learned 3x3 filters, each compared (cosine similarity) with the
# hand-made kernels above. On 8x8 digits and a few epochs the matches are loose; tutorial 2
# does the same for a PyTorch CNN trained on MNIST.

# %%
w1 = run["model"].layers[0].params["w"]  # (16, 1, 3, 3)
matches = closest_kernels(w1)
for i, m in enumerate(matches):
    print(f"filter {i:2d}: closest {m.name:<10} cos {m.similarity:+.2f}")
fig = plots.image_grid(w1[:, 0], [f"{m.name}\n{m.similarity:+.2f}" for m in matches], columns=8, cmap="RdBu_r")
show(fig, OUT / "scratch_filters.png")
results["filter_matches"] = [m.name for m in matches]

# %% [markdown]
# ## What we saw
#
# - A Conv2D output cell is a dot product: [[19, 25], [37, 43]] and the depth example's -25
#   are exactly what PyTorch computes.
# - Stride and padding set the output size by W_out = floor((W_in - K + 2P) / S) + 1;
#   Keras' "same" keeps ceil(W_in / S), putting an odd extra zero at the bottom/right.
# - Pooling has no weights and halves each side; max pooling keeps strong responses.
# - Those pieces, plus backpropagation, are a CNN: about 98% on 8x8 digits in seconds.

# %%
save_results(OUT, results)
