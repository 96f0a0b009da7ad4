"""The converter rules (QF401-QF403, QF407) follow what the file does (`Activity.not_for_integer`):
no finding in a unit test or on a deliberately non-integer variant, still one on the script
that forgot the recipe. Shapes taken from public repositories (PINTO_model_zoo's folders of
variant scripts, tflite-micro's train.py writing a float and an int8 model)."""

from __future__ import annotations

from qfix.rules import select, source_rules
from qfix.source.engine import lint_source
from qfix.source.rule import integer_io_scripts

RULES = select(source_rules(), ["QF401", "QF402", "QF403", "QF407"])
HEAD = "import tensorflow as tf\n"
DATASET = "def gen():\n    for x in data:\n        yield [x]\n"
INTEGER_FLOAT_IO = (  # PINTO's 03_integer_quantization.py: int8 inside, float I/O
    HEAD + DATASET + "converter = tf.lite.TFLiteConverter.from_saved_model('saved_model')\n"
    "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.representative_dataset = gen\n"
    "open('m_integer_quant.tflite', 'wb').write(converter.convert())\n"
)
FULL_INTEGER = (  # PINTO's 05_full_integer_quantization.py
    HEAD + DATASET + "converter = tf.lite.TFLiteConverter.from_saved_model('saved_model')\n"
    "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.representative_dataset = gen\n"
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
    "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n"
    "open('m_full_integer_quant.tflite', 'wb').write(converter.convert())\n"
)


def _codes(code: str, path: str) -> list[str]:
    return sorted(v.code for v in lint_source(code, rules=RULES, target="edgetpu", path=path).violations)


def test_float_io_variant_beside_a_full_integer_script_is_quiet(tmp_path):
    d = tmp_path / "with_full"
    d.mkdir()
    (d / "03_integer_quantization.py").write_text(INTEGER_FLOAT_IO)
    (d / "05_full_integer_quantization.py").write_text(FULL_INTEGER)
    integer_io_scripts.cache_clear()
    assert _codes(INTEGER_FLOAT_IO, str(d / "03_integer_quantization.py")) == []
    assert _codes(FULL_INTEGER, str(d / "05_full_integer_quantization.py")) == []


def test_float_io_variant_alone_is_reported(tmp_path):
    d = tmp_path / "alone"
    d.mkdir()
    (d / "03_integer_quantization.py").write_text(INTEGER_FLOAT_IO)
    # a sibling whose integer I/O is commented out writes no integer-I/O model
    (d / "other.py").write_text(FULL_INTEGER.replace("converter.inference_input_type", "# converter.inference_input_type"))
    integer_io_scripts.cache_clear()
    assert _codes(INTEGER_FLOAT_IO, str(d / "03_integer_quantization.py")) == ["QF402", "QF403"]
    assert integer_io_scripts(str(d)) == frozenset()


def test_float_io_variant_in_a_file_with_the_integer_io_one_is_quiet(tmp_path):
    both = INTEGER_FLOAT_IO + FULL_INTEGER.replace(HEAD + DATASET, "")
    assert _codes(both, str(tmp_path / "all_variants.py")) == []
    # two float-I/O integer variants: nothing excuses either
    twice = INTEGER_FLOAT_IO + INTEGER_FLOAT_IO.replace(HEAD + DATASET, "")
    assert _codes(twice, str(tmp_path / "twice.py")) == ["QF402", "QF402", "QF403", "QF403"]


def test_float_and_int8_models_from_one_training_script(tmp_path):
    # tflite-micro hello_world/train.py: a float model for comparison, then the int8 one
    code = (
        HEAD + DATASET + "converter = tf.lite.TFLiteConverter.from_keras_model(model)\nfloat_model = converter.convert()\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = gen\nconverter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        "converter.inference_input_type = tf.int8\nconverter.inference_output_type = tf.int8\nint8_model = converter.convert()\n"
    )
    assert _codes(code, str(tmp_path / "train.py")) == []
    float_only = code.split("converter = tf.lite.TFLiteConverter.from_keras_model(model)\nconverter.optimizations")[0]
    # the float model alone (tflite-micro's hello_world/train.py today): a float deliverable
    assert _codes(float_only, str(tmp_path / "train.py")) == []
    # ... unless the file expects an integer model from it: then it forgot the recipe
    named = float_only + "open('hello_world_int8.tflite', 'wb').write(float_model)\n"
    assert _codes(named, str(tmp_path / "train.py")) == ["QF401"]


def test_float16_and_weight_only_variants(tmp_path):
    float16 = (
        HEAD + "converter = tf.lite.TFLiteConverter.from_saved_model('saved_model')\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\nconverter.target_spec.supported_types = [tf.float16]\n"
        "open('m_float16_quant.tflite', 'wb').write(converter.convert())\n"
    )
    assert _codes(float16, str(tmp_path / "04_float16_quantization.py")) == []
    weight = float16.replace("converter.target_spec.supported_types = [tf.float16]\n", "").replace("float16", "weight")
    assert _codes(weight, str(tmp_path / "02_weight_quantization.py")) == []
    assert _codes(weight.replace("m_weight_quant", "m"), str(tmp_path / "convert.py")) == ["QF401"]
    # float16 with a dataset: an integer model was meant, the float16 type undoes it (QF407),
    # unless the file names what it writes float16
    with_dataset = float16.replace(HEAD, HEAD + DATASET).replace("converter.target_spec", "converter.representative_dataset = gen\nconverter.target_spec")
    assert _codes(with_dataset, str(tmp_path / "04_float16_quantization.py")) == []
    assert _codes(with_dataset.replace("m_float16_quant", "m"), str(tmp_path / "convert.py")) == ["QF407"]


def test_unit_test_of_a_converter_is_quiet(tmp_path):
    code = HEAD + "converter = tf.lite.TFLiteConverter.from_keras_model(model)\nconverter.optimizations = [tf.lite.Optimize.DEFAULT]\nm = converter.convert()\n"
    assert _codes(code, str(tmp_path / "requantize_test.py")) == []
    assert _codes(code, str(tmp_path / "requantize.py")) == ["QF401"]
