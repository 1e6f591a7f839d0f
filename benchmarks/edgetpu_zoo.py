"""Keras builders for the rows of Coral's published Edge TPU latency table that keras.applications lacks.

Random weights (latency does not depend on them). Each follows the graph Coral benchmarked as closely
as Keras allows; deviations are listed in DEVIATIONS and repeated in the benchmark's results. Kept out
of the runtime package: only benchmarks/bench_edgetpu_model.py imports it (it pulls in Keras).
"""

from __future__ import annotations

import keras
from keras import layers as kl

DEVIATIONS = {
    "inception_v1": "TF-slim's inception_v1 (what Coral converted): BN instead of LRN, slim's 3x3 (not 5x5) "
                    "third branch; 1001 classes",
    "inception_v4": "TF-slim's inception_v4 without the auxiliary head (inference graph); 1001 classes",
    "squeezenet": "SqueezeNet v1.1 (3x3/64 stem, pools after fire 3 and 5), 1001 classes, no BN",
    "mobilenet_v1_ssd": "TF-OD ssd_mobilenet_v1 at 224: features at conv_pw_11 and conv_pw_13 plus 4 extra "
                        "1x1/3x3-s2 pairs (512, 256, 256, 128), 1x1 box/class predictors (3 then 6 anchors, 91 "
                        "classes), logistic scores; TFLite_Detection_PostProcess (custom CPU op: box decoding "
                        "and NMS) left out",
    "mobilenet_v2_ssd": "TF-OD ssd_mobilenet_v2 at 224: features at block_13 expansion and the 1280 head conv "
                        "plus the same extra layers and predictors; postprocess left out as for v1",
    "unet_mobilenet_v2": "the TF segmentation tutorial's model: keras MobileNetV2 encoder (skips at block 1, 3, "
                         "6, 13 expand and 16 project) and pix2pix upsample decoder (512, 256, 128, 64), 3 classes",
    "deeplab_v3": "deeplabv3_mnv2_pascal: MobileNetV2 depth multiplier 1.0 (we take the benchmark row to be "
                  "Coral's dm 1.0 file; a dm 0.5 file exists too), output stride 16 (last blocks dilated), "
                  "no final 1280 conv, ASPP of image pooling + 1x1 (no atrous branches for MobileNet), 21 "
                  "classes, logits resized to 513 bilinearly; the ArgMax after it is left out",
}


def _cbr(x, filters, kernel, stride=1, padding="same", act="relu", bn=True):
    x = kl.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=not bn)(x)
    if bn:
        x = kl.BatchNormalization()(x)
    return kl.Activation(act)(x) if act else x


def _input(size):
    return keras.Input((size, size, 3), batch_size=1)


def _classifier(x, classes=1001):
    x = kl.GlobalAveragePooling2D()(x)
    return kl.Dense(classes)(x)


def inception_v1(size=224):
    inputs = _input(size)
    x = _cbr(inputs, 64, 7, 2)
    x = kl.MaxPooling2D(3, 2, padding="same")(x)
    x = _cbr(x, 64, 1)
    x = _cbr(x, 192, 3)
    x = kl.MaxPooling2D(3, 2, padding="same")(x)

    def mixed(x, a, b1, b2, c1, c2, d):
        pool = _cbr(kl.MaxPooling2D(3, 1, padding="same")(x), d, 1)
        return kl.Concatenate()([_cbr(x, a, 1), _cbr(_cbr(x, b1, 1), b2, 3), _cbr(_cbr(x, c1, 1), c2, 3), pool])

    x = mixed(x, 64, 96, 128, 16, 32, 32)
    x = mixed(x, 128, 128, 192, 32, 96, 64)
    x = kl.MaxPooling2D(3, 2, padding="same")(x)
    for cfg in [(192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
                (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)]:
        x = mixed(x, *cfg)
    x = kl.MaxPooling2D(2, 2, padding="same")(x)
    x = mixed(x, 256, 160, 320, 32, 128, 128)
    x = mixed(x, 384, 192, 384, 48, 128, 128)
    return keras.Model(inputs, _classifier(x))


def inception_v4(size=299):
    c = _cbr
    inputs = _input(size)
    x = c(inputs, 32, 3, 2, "valid")
    x = c(x, 32, 3, 1, "valid")
    x = c(x, 64, 3)
    x = kl.Concatenate()([kl.MaxPooling2D(3, 2)(x), c(x, 96, 3, 2, "valid")])
    x = kl.Concatenate()([c(c(x, 64, 1), 96, 3, 1, "valid"),
                          c(c(c(c(x, 64, 1), 64, (1, 7)), 64, (7, 1)), 96, 3, 1, "valid")])
    x = kl.Concatenate()([c(x, 192, 3, 2, "valid"), kl.MaxPooling2D(3, 2)(x)])

    def avg_branch(x, f):
        return c(kl.AveragePooling2D(3, 1, padding="same")(x), f, 1)

    for _ in range(4):  # Inception-A, 35x35
        x = kl.Concatenate()([c(x, 96, 1), c(c(x, 64, 1), 96, 3), c(c(c(x, 64, 1), 96, 3), 96, 3),
                              avg_branch(x, 96)])
    x = kl.Concatenate()([c(x, 384, 3, 2, "valid"), c(c(c(x, 192, 1), 224, 3), 256, 3, 2, "valid"),
                          kl.MaxPooling2D(3, 2)(x)])
    for _ in range(7):  # Inception-B, 17x17
        b2 = c(c(c(x, 192, 1), 224, (1, 7)), 256, (7, 1))
        b3 = c(c(c(c(c(x, 192, 1), 192, (7, 1)), 224, (1, 7)), 224, (7, 1)), 256, (1, 7))
        x = kl.Concatenate()([c(x, 384, 1), b2, b3, avg_branch(x, 128)])
    x = kl.Concatenate()([c(c(x, 192, 1), 192, 3, 2, "valid"),
                          c(c(c(c(x, 256, 1), 256, (1, 7)), 320, (7, 1)), 320, 3, 2, "valid"),
                          kl.MaxPooling2D(3, 2)(x)])
    for _ in range(3):  # Inception-C, 8x8
        b2 = c(x, 384, 1)
        b3 = c(c(c(x, 384, 1), 448, (3, 1)), 512, (1, 3))
        x = kl.Concatenate()([c(x, 256, 1), c(b2, 256, (1, 3)), c(b2, 256, (3, 1)), c(b3, 256, (1, 3)),
                              c(b3, 256, (3, 1)), avg_branch(x, 256)])
    return keras.Model(inputs, _classifier(x))


def squeezenet(size=224):
    inputs = _input(size)
    x = _cbr(inputs, 64, 3, 2, "valid", bn=False)
    x = kl.MaxPooling2D(3, 2)(x)

    def fire(x, s, e):
        x = _cbr(x, s, 1, bn=False)
        return kl.Concatenate()([_cbr(x, e, 1, bn=False), _cbr(x, e, 3, bn=False)])

    x = fire(fire(x, 16, 64), 16, 64)
    x = kl.MaxPooling2D(3, 2)(x)
    x = fire(fire(x, 32, 128), 32, 128)
    x = kl.MaxPooling2D(3, 2)(x)
    x = fire(fire(fire(fire(x, 48, 192), 48, 192), 64, 256), 64, 256)
    x = _cbr(x, 1001, 1, bn=False)
    x = kl.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, kl.Softmax()(x))


def _ssd(inputs, features, classes=91):
    x = features[-1]
    for mid, out in [(256, 512), (128, 256), (128, 256), (64, 128)]:
        x = _cbr(_cbr(x, mid, 1, act="relu6"), out, 3, 2, act="relu6")
        features.append(x)
    boxes, scores = [], []
    for i, f in enumerate(features):
        anchors = 3 if i == 0 else 6
        boxes.append(kl.Reshape((-1, 4))(kl.Conv2D(anchors * 4, 1)(f)))
        scores.append(kl.Reshape((-1, classes))(kl.Conv2D(anchors * classes, 1)(f)))
    boxes = kl.Concatenate(axis=1)(boxes)
    scores = kl.Activation("sigmoid")(kl.Concatenate(axis=1)(scores))
    return keras.Model(inputs, [boxes, scores])


def mobilenet_v1_ssd(size=224):
    inputs = _input(size)
    base = keras.applications.MobileNet(weights=None, include_top=False, input_tensor=inputs)
    feats = [base.get_layer("conv_pw_11_relu").output, base.get_layer("conv_pw_13_relu").output]
    return _ssd(inputs, feats)


def mobilenet_v2_ssd(size=224):
    inputs = _input(size)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_tensor=inputs)
    feats = [base.get_layer("block_13_expand_relu").output, base.get_layer("out_relu").output]
    return _ssd(inputs, feats)


def unet_mobilenet_v2(size=128, classes=3):
    inputs = _input(size)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_tensor=inputs)
    names = ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu",
             "block_16_project"]
    skips = [base.get_layer(n).output for n in names]
    x = skips[-1]
    for filters, skip in zip((512, 256, 128, 64), reversed(skips[:-1])):
        x = kl.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = kl.ReLU()(kl.BatchNormalization()(x))
        x = kl.Concatenate()([x, skip])
    return keras.Model(inputs, kl.Conv2DTranspose(classes, 3, strides=2, padding="same")(x))


def _inverted(x, expand, out, stride, dilation):
    cin = x.shape[-1]
    y = _cbr(x, cin * expand, 1, act="relu6") if expand != 1 else x
    y = kl.DepthwiseConv2D(3, stride, padding="same", dilation_rate=dilation, use_bias=False)(y)
    y = kl.ReLU(6.0)(kl.BatchNormalization()(y))
    y = _cbr(y, out, 1, act=None)
    return kl.Add()([x, y]) if stride == 1 and cin == out else y


def deeplab_v3(size=513, classes=21):
    inputs = _input(size)
    x = _cbr(inputs, 32, 3, 2, act="relu6")
    stride, dilation = 2, 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            st = s if i == 0 else 1
            if st == 2 and stride == 16:  # output stride 16: the last stride becomes dilation
                st, dilation = 1, dilation * 2
            elif st == 2:
                stride *= 2
            x = _inverted(x, t, c, st, dilation)
    pooled = kl.GlobalAveragePooling2D(keepdims=True)(x)
    pooled = _cbr(pooled, 256, 1)
    pooled = kl.Resizing(x.shape[1], x.shape[2], interpolation="bilinear")(pooled)
    x = kl.Concatenate()([pooled, _cbr(x, 256, 1)])
    x = _cbr(x, 256, 1)
    x = kl.Conv2D(classes, 1)(x)
    return keras.Model(inputs, kl.Resizing(size, size, interpolation="bilinear")(x))


BUILDERS = {f.__name__: f for f in (inception_v1, inception_v4, squeezenet, mobilenet_v1_ssd, mobilenet_v2_ssd,
                                    unet_mobilenet_v2, deeplab_v3)}
