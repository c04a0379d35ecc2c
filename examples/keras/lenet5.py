"""The workshop's LeNet-5 ("Lenet-5 (1998) by Yann LeCun"), its Keras listing verbatim.

    python examples/keras/lenet5.py        # Keras's summary: 61,706 parameters

In Python, neuralab turns it into a native PyTorch module that computes the same function
(images as (N, 1, 32, 32) in, Keras's softmax probabilities out):

    from neuralab.keras import convert
    from lenet5 import model
    net = convert(model)

Keras 3 runs here on PyTorch (``pip install neuralab[keras]``); TensorFlow is not needed.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from keras.layers import AveragePooling2D, Conv2D, Dense, Flatten  # noqa: E402
from keras.models import Sequential  # noqa: E402

# --- the workshop's listing, verbatim -------------------------------------------------------
model = Sequential()
model.add(Conv2D(6, (5, 5), strides=(1, 1), activation='tanh', padding="valid", input_shape=(32, 32, 1)))
model.add(AveragePooling2D(pool_size=(2, 2), strides=(2, 2)))
model.add(Conv2D(16, (5, 5), strides=(1, 1), activation='tanh', padding="valid"))
model.add(AveragePooling2D(pool_size=(2, 2), strides=(2, 2)))
model.add(Conv2D(120, (5, 5), strides=(1, 1), activation='tanh', padding="valid"))
model.add(Flatten())
model.add(Dense(84, activation='tanh'))
model.add(Dense(10, activation='softmax'))
# ---------------------------------------------------------------------------------------------

if __name__ == "__main__":
    model.summary()
