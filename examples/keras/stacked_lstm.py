"""The workshop's stacked LSTM ("Comparison between traditional RNN and LSTM"), its Keras
listing verbatim, for windows of 60 past values of one series.

    python examples/keras/stacked_lstm.py  # Keras's summary: 116,033 parameters

The slide stops at the second LSTM; a forecaster needs one output, so one Dense(1) follows
(as in the workshop's hands-on). In Python, neuralab turns it into a native PyTorch module:

    from neuralab.keras import convert
    from stacked_lstm import model
    net = convert(model)                   # (N, 60, 1) in, (N, 1) out

Keras 3 runs here on PyTorch (``pip install neuralab[keras]``); TensorFlow is not needed.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from keras.layers import LSTM, Dense  # noqa: E402
from keras.models import Sequential  # noqa: E402

x_train = np.zeros((1, 60, 1), dtype="float32")  # the shape the slide reads: windows of 60 steps, 1 feature

# --- the workshop's listing, verbatim -------------------------------------------------------
model = Sequential()  
model.add(LSTM(128, return_sequences=True, input_shape= (x_train.shape[1], 1)))  
model.add(LSTM(64, return_sequences=False))
# ---------------------------------------------------------------------------------------------
model.add(Dense(1))  # the forecast: the next value

if __name__ == "__main__":
    model.summary()
