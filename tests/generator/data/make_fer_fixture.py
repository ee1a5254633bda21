"""Rebuild fer_keras_fixture.npz: the original Keras model's probabilities on a few shipped faces.

Two steps, two environments (TensorFlow never enters the project's environment)::

    # 1. face crops, with the project's environment (dlib finds the faces)
    python tests/generator/data/make_fer_fixture.py crops /tmp/fer_inputs.npz
    # 2. the original Keras model, in a throwaway venv:
    #    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu h5py
    /tmp/tfvenv/bin/python tests/generator/data/make_fer_fixture.py keras /tmp/fer_inputs.npz \
        generator/assets/fer/emotion_model.hdf5 tests/generator/data/fer_keras_fixture.npz

Step 2 imports only numpy, h5py and keras, applies fer's own preprocessing (x / 255, then (x - 0.5) * 2)
and stores the inputs (uint8), the probabilities and the TensorFlow/Keras versions.
"""

import sys

import numpy as np


def crops(out):
    import matplotlib.cbook
    from PIL import Image
    from skimage import data

    from generator.check.rater import face_crop
    from generator.faces import detect_faces

    astronaut = data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    faces, names = [], []
    for name, img in (("astronaut", astronaut), ("grace_hopper", hopper)):
        box, _ = detect_faces(img)[0]
        for offset in (0, 10, 25):
            faces.append(face_crop(img, box, offset=offset))
            names.append(f"{name}_offset{offset}")
        faces.append(face_crop(img[:, ::-1], (img.shape[1] - box[2], box[1], img.shape[1] - box[0], box[3])))
        names.append(f"{name}_mirrored")
        dark = (face_crop(img, box).astype(np.float32) * 0.5).astype(np.uint8)
        faces.append(dark)
        names.append(f"{name}_dark")
    rng = np.random.default_rng(0)
    faces.append(rng.integers(0, 256, (64, 64), dtype=np.uint8))
    names.append("noise")
    np.savez(out, faces=np.stack(faces), names=np.array(names))


def keras_probs(inputs, model_path, out):
    import keras
    import tensorflow as tf

    d = np.load(inputs)
    model = keras.models.load_model(model_path, compile=False)
    x = (d["faces"].astype(np.float32) / 255.0 - 0.5) * 2.0
    probs = model.predict(x[..., None], verbose=0)
    np.savez_compressed(out, faces=d["faces"], names=d["names"], probs=probs.astype(np.float64),
                        versions=np.array([f"tensorflow {tf.__version__}", f"keras {keras.__version__}"]))
    for n, p in zip(d["names"], probs):
        print(n, np.round(p, 4))


if __name__ == "__main__":
    if sys.argv[1] == "crops":
        crops(sys.argv[2])
    else:
        keras_probs(*sys.argv[2:5])
