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
# # 2. From MLP to CNN on MNIST and Fashion-MNIST
#
# The workshop starts its CNN part from a remark about the earlier examples: a fully
# connected network (MLP) on MNIST and Fashion-MNIST gives accuracy and loss that "are ok
# but not so great". This tutorial measures that: the MLP, the workshop's sample CNN and
# LeNet-5 trained with **the same budget** (data, epochs, batch size, learning rate,
# seeds) on both datasets, a comparison table, and then a look inside the trained CNN:
# its feature maps and its learned first-layer filters.
#
# **Runtime on a 2-core CPU:** about 12 min (full: all 54,000 training images, 10
# epochs, 3 seeds per model and dataset; most of it is the CNN), about 11 s in the small
# budget (`NEURALAB_TUTORIAL_BUDGET=small`: 2,000 training images, 2 epochs, 1 seed).
#
# Needs MNIST and Fashion-MNIST where neuralab finds them: `neuralab data list` shows
# where it looks, `neuralab data fetch mnist` downloads.

# %% [markdown]
# ## Setup

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np

from _common import SMALL, budget, out_dir, prepare_images, save_results, show, train_and_test
from neuralab.mechanics import closest_kernels
from neuralab.models import build_model
from neuralab.models.inspect import feature_maps, filter_pairs, first_layer_filters
from neuralab.reports import plots
from neuralab.reports.inspect import filters_figure
from neuralab.training import ClassifierConfig, TrainConfig, confusion_matrix, seed_everything
from neuralab.training.compare import Row, to_markdown

OUT = out_dir("02-mlp-to-cnn")
DATASETS = ["mnist", "fashion-mnist"]
MODELS = ["mlp", "cnn", "lenet5"]
SEEDS = budget(3, 1)
# The one budget every model gets: neuralab's defaults (Adam, one-cycle schedule peaking at
# lr 3e-3, batch 128), 10 epochs, as `neuralab compare` uses.
CONFIG = TrainConfig(epochs=budget(10, 2), batch_size=128, lr=3e-3)
results = {"epochs": CONFIG.epochs, "seeds": SEEDS}
print("budget:", "small" if SMALL else "full", "| outputs in", OUT)

# %% [markdown]
# ## Prepare the data
#
# Both datasets are 28x28 grayscale images (depth 1) in 10 classes: 60,000 for training,
# of which neuralab holds out a seeded 10% for validation, and 10,000 for testing. Pixels
# are scaled to mean 0 and standard deviation 1 with the training set's statistics.

# %%
data = {}
for name in DATASETS:
    data[name] = prepare_images(name, n_train=budget(None, 2000), n_val=budget(None, 500), n_test=budget(None, 1000))
    d = data[name]
    fig = plots.image_grid(d.pixels[:16], [d.classes[int(c)] for c in d.test[1][:16]], columns=8)
    show(fig, OUT / f"{name}_samples.png")
results["n_train"] = len(data["mnist"].train[1])
results["n_test"] = len(data["mnist"].test[1])

# %% [markdown]
# ## Build the model
#
# - `mlp`: Flatten (784 values) -> Dense 256 -> 128 -> 100 -> 10. It sees the image as a
#   list of unrelated numbers: shifting a digit by one pixel changes every input.
# - `cnn`: the workshop's sample CNN: blocks of Conv2D(3x3, relu) -> BatchNormalization ->
#   MaxPool2D(2x2) -> Dropout, then Flatten -> Dense 128 -> Dropout -> Dense 10.
# - `lenet5`: LeNet-5 (1998), the subject of tutorial 3.
#
# Each model returns logits; the softmax lives in the loss. Softmax makes the 10 classes
# compete for one label per picture; the Flatten slide's "multi-labels" (a picture with
# several labels at once) take a sigmoid per label instead. Keras' `model.summary()` is
# `summary(model, input_shape)`, printed before each training below.

# %%
for name in MODELS:
    model = build_model(name, (1, 28, 28), 10)
    print(f"{name:>7}: {sum(p.numel() for p in model.parameters()):>9,} parameters")

# %% [markdown]
# ## Train
#
# Every model, dataset and seed gets the same `TrainConfig`; only the seed changes
# between repeats (it sets the initial weights, dropout and the order of the batches).

# %%
runs = {}  # (dataset, model) -> list of Trained, one per seed
for dname in DATASETS:
    for mname in MODELS:
        for seed in range(SEEDS):
            seed_everything(seed)
            model = build_model(mname, data[dname].input_shape, len(data[dname].classes))
            run = train_and_test(model, data[dname], replace(CONFIG, seed=seed), f"{mname} on {dname}",
                                 verbose=seed == 0)
            runs.setdefault((dname, mname), []).append(run)

# %% [markdown]
# ## Evaluate
#
# ### The comparison table
#
# Test accuracy as mean +- standard deviation over the seeds, in the format of
# `neuralab compare` (the table in docs/benchmarks.md comes from that command).

# %%
for dname in DATASETS:
    rows = [Row(m, runs[dname, m][0].params, float(np.median([r.seconds_per_epoch for r in runs[dname, m]])),
                [r.test["accuracy"] for r in runs[dname, m]], len(data[dname].test[0])) for m in MODELS]
    table = to_markdown(rows, ClassifierConfig(data=dname, train=CONFIG), SEEDS)
    print(table, "\n")
    (OUT / f"compare-{dname}.md").write_text(table + "\n")
    results[dname] = {r.model: {"params": r.params, "seconds_per_epoch": r.seconds_per_epoch,
                                "accuracies": r.accuracies, "accuracy_mean": r.mean} for r in rows}

# %% [markdown]
# Validation accuracy per epoch, seed 0: the CNN is ahead from the first epoch on.

# %%
fig = plots.per_epoch({dname: {mname: runs[dname, mname][0].history for mname in MODELS} for dname in DATASETS},
                      "val_accuracy", "validation accuracy")
show(fig, OUT / "validation_accuracy.png")

# %% [markdown]
# Where the CNN still errs on Fashion-MNIST: shirts, T-shirts, pullovers and coats look
# alike at 28x28.

# %%
cnn_run = runs["fashion-mnist", "cnn"][0]
fashion = data["fashion-mnist"]
predicted = cnn_run.classifier.predict_proba(fashion.pixels).argmax(1)  # raw test images in, as for a saved run
truth = fashion.test[1].numpy()
matrix = confusion_matrix(predicted, truth, len(fashion.classes))
show(plots.confusion(matrix, fashion.classes), OUT / "cnn_confusion.png")

# %% [markdown]
# ### What the CNN sees
#
# The feature maps are the outputs of each convolution and pooling layer for one image:
# each of the first layer's 32 filters gives one 28x28 map, which BatchNormalization and
# max pooling turn into 14x14; the second block's 64 maps are 7x7 after pooling.
# Bright means a strong response.

# %%
index = int(np.flatnonzero(truth == fashion.classes.index("Ankle boot"))[0])
maps = feature_maps(cnn_run.model, fashion.test[0][index:index + 1])
for fm in maps:
    print(f"{fm.name:<12} {fm.kind:<14} {fm.maps.shape}")
results["feature_maps"] = {fm.name: list(fm.maps.shape) for fm in maps}

convs = [fm for fm in maps if fm.kind == "Conv2d"]
fig, axes = plt.subplots(2, 9, figsize=(13, 3.4))
axes[0, 0].imshow(fashion.pixels[index, 0], cmap="gray")
axes[0, 0].set_title("input 28x28", fontsize=8)
axes[1, 0].axis("off")
for row, fm in enumerate(convs[:2]):
    for j in range(8):
        axes[row, j + 1].imshow(fm.maps[j], cmap="gray")
        axes[row, j + 1].set_title(f"{fm.name} #{j}\n{fm.maps.shape[1]}x{fm.maps.shape[2]}", fontsize=7)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"What the CNN sees: the first 8 maps of each conv layer ({fashion.classes[truth[index]]}, "
             f"predicted {fashion.classes[predicted[index]]})", fontsize=10)
show(fig, OUT / "what_the_cnn_sees.png")

# %% [markdown]
# The first layer's learned 3x3 filters, each beside the hand-made kernel of tutorial 1
# it resembles most (cosine similarity; a negative one is the kernel with its sign
# flipped). Nobody wrote an edge detector into the network; training found some.

# %%
weights = first_layer_filters(cnn_run.model)  # (32, 1, 3, 3)
show(filters_figure(weights[:16], filter_pairs(weights[:16])), OUT / "cnn_filters.png")
matches = closest_kernels(weights)
results["filter_matches"] = sorted({m.name for m in matches if abs(m.similarity) >= 0.7})
print("filters with a close classic kernel (|cos| >= 0.7):",
      [(i, m.name, round(m.similarity, 2)) for i, m in enumerate(matches) if abs(m.similarity) >= 0.7])

# %% [markdown]
# ## What we saw
#
# - With the same data, epochs and learning rate, the CNN beats the MLP on both datasets
#   with a comparable number of parameters: a convolution reuses one small kernel at every
#   position, so its parameters go into detecting local patterns anywhere in the picture,
#   where the MLP must learn each pattern at each position separately.
# - LeNet-5 has a quarter of the MLP's parameters. In the full budget it beats the MLP on
#   both datasets (mean test accuracy 99.1% to 98.2% on MNIST, 90.0% to 88.8% on
#   Fashion-MNIST in our run, docs/tutorials/README.md); in the small budget it leads on
#   MNIST (in our run 87.3% to 83.0%) and the two are within noise on Fashion-MNIST (69.0%
#   to the MLP's 70.3%, one seed: a standard error of about 1.5 points on 1,000 test images).
# - The CNN's early feature maps are recognisable filtered copies of the input (edges,
#   outlines, textures); deeper ones are coarser and more abstract.

# %%
save_results(OUT, results)
