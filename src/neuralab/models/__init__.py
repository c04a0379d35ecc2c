"""The model zoo: one file per architecture, built by name for any input shape.

Every builder takes ``input_shape`` as (channels, height, width) and ``num_classes`` and
returns a module whose forward gives logits; the softmax lives in the loss and in predict.
The names below are imported on first use (neuralab._lazy): the zoo's table needs no torch.
"""

from neuralab._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    **dict.fromkeys(["ARCHITECTURES", "Architecture", "build_model", "count_parameters", "parameters_at"],
                    "neuralab.models.zoo"),
    **dict.fromkeys(["ModelSummary", "print_summary", "render_summary", "summary"], "neuralab.models.summary"),
})

__all__ = ["ARCHITECTURES", "Architecture", "ModelSummary", "build_model", "count_parameters", "parameters_at",
           "print_summary", "render_summary", "summary"]
