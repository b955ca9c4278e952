"""The paper's test protocols as data (vggcore.evaluate.protocols): its defaults at 224, their scaled forms, and the refusals."""

import pytest

from vggcore.errors import UserError
from vggcore.evaluate.protocols import Protocol, ProtocolError, dense_minimum, own_protocol, paper_scales, resolve


def at(size, s_min, s_max, pool=None, **asked):
    return resolve(Protocol(**asked), size, size // 32 if pool is None else pool, s_min, s_max)


def test_the_paper_at_224():
    """Section 3.2 and Tables 3-5 exactly: Q = S or the middle of [S_min, S_max]; S - 32, S, S + 32; the
    150 crops."""
    assert at(224, 256, 256, protocol="dense").scales == (256,)
    assert at(224, 256, 512, protocol="dense").scales == (384,)
    assert at(224, 256, 256, protocol="dense", scales="multi").scales == (224, 256, 288)
    assert at(224, 384, 384, protocol="dense", scales="multi").scales == (352, 384, 416)
    assert at(224, 256, 512, protocol="centre", scales="multi").scales == (256, 384, 512)
    crops = at(224, 256, 512, protocol="multicrop")
    assert (crops.scales, crops.crops, crops.flip, crops.views) == ((256, 384, 512), 5, True, 150)
    both = at(224, 256, 512, protocol="dense+multicrop")
    assert (both.views, both.flip) == (3 * 2 * (25 + 1), True)
    assert at(224, 256, 256).flip is False and at(224, 256, 256, protocol="dense").crops is None
    # section 3.2: dense evaluation averages the softmax of the image and of its mirror
    dense = at(224, 256, 256, protocol="dense")
    assert (dense.flip, dense.views) == (True, 2)


def test_scaled_to_small_images():
    """At 32 px S = 37 and the paper's 32 px step is 32 * 32 / 224 = 4.6 px; dense rounds to its 32 px grid."""
    assert paper_scales("multi", 32, 37, 37) == pytest.approx((37 - 32 / 7, 37, 37 + 32 / 7))
    assert at(32, 37, 37).scales == (37,)
    assert at(32, 37, 37, scales="multi").scales == (32, 37, 42)
    assert at(32, 37, 37, protocol="dense").scales == (32,)
    assert at(32, 37, 37, protocol="dense", scales="multi").scales == (32,)       # one window at 32 px
    assert at(64, 73, 73, protocol="dense", scales="multi").scales == (64, 96)   # S = 73, Q = 64, 73, 82
    assert at(32, 37, 74, protocol="multicrop").scales == (37, 56, 74)         # jittered: S_min, mid, S_max
    # a study's scales are given for the paper's 224 px crop
    assert at(32, 37, 37, scales=(224, 256, 288), scales_for=224).scales == (32, 37, 41)
    assert at(64, 73, 73, protocol="dense", scales=(224, 256, 288), scales_for=224).scales == (64, 96)
    assert at(224, 256, 256, protocol="dense", scales=(224, 256, 288), scales_for=224).scales == (224, 256, 288)
    assert at(32, 37, 37, protocol="multicrop", flip=False, crops=3).views == 27
    assert own_protocol(32, 37).to_json() == {"protocol": "centre", "scales": [37], "flip": False, "crops": None,
                                              "views": 1}


def test_dense_minimum_follows_the_head():
    assert dense_minimum(32, 1) == 32 and dense_minimum(224, 7) == 224
    assert dense_minimum(32, 7) == 224   # torchvision's head: fc6 becomes a 7x7 convolution
    assert dense_minimum(40, 1) == 64    # the gap head trains at any size; dense takes multiples of 32


@pytest.mark.parametrize("asked,size,pool,match", [
    (dict(protocol="centre", scales=(24,)), 32, 1,
     r"test scale 24 in scales: a test scale is a whole number of pixels, at least 32"),
    (dict(protocol="centre", scales=(33,)), 64, 2, r"test scale 33 is below the training size 64: every test scale "
                                                   r"must be at least 64"),
    (dict(protocol="dense", scales=(40,)), 32, 1, r"test scale 40 cannot be taken by dense evaluation: it takes "
                                                  r"multiples of 32 from 32 up \(32, 64, 96, \.\.\.\)"),
    (dict(protocol="dense+multicrop", scales=(37, 64)), 32, 1, r"test scale 37 cannot be taken by dense\+multicrop"),
    (dict(protocol="dense"), 32, 7, r"test scale 32 cannot be taken by dense evaluation: it takes multiples of 32 "
                                    r"from 224 up .* fc6 reads 7x7 cells"),
    (dict(protocol="tencrop"), 32, 1, r"unknown test protocol 'tencrop'; choose one of centre, dense, multicrop, "
                                      r"dense\+multicrop"),
    (dict(protocol="multicrop", crops=0), 32, 1, r"crops must be a positive integer \(the side of the G x G grid"),
    (dict(protocol="dense", crops=3), 32, 1, r"crops 3 applies to multicrop and dense\+multicrop only, not dense"),
    (dict(scales="double"), 32, 1, r"scales 'double': give single or multi, or test scales in pixels"),
    (dict(scales=(37, 37)), 32, 1, r"scales \[37, 37\] lists a scale twice"),
    (dict(scales=()), 32, 1, r"scales must be single, multi or a non-empty list"),
    (dict(flip="yes"), 32, 1, r"flip must be true or false, got 'yes'"),
    (dict(scales=(200,), scales_for=224), 32, 1, r"test scale 200 \(given for 224 px training\) is 29 px at this "
                                                 r"run's 32, below its training size"),
])
def test_refused_protocols_name_the_value_and_what_is_allowed(asked, size, pool, match):
    with pytest.raises(ProtocolError, match=match) as caught:
        resolve(Protocol(**asked), size, pool, round(size * 256 / 224), round(size * 256 / 224))
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_a_resolved_protocol_has_one_key_however_it_was_asked():
    a = at(32, 37, 37, protocol="centre")
    b = at(32, 37, 37, protocol="centre", scales=(37,), flip=False)
    c = at(32, 37, 37, protocol="centre", scales=(42, 32, 37))
    assert a.key() == b.key() and c.scales == (32, 37, 42) and a.key() != c.key()
