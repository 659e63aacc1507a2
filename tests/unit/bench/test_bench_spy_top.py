"""bench/spy_top.py: a py-spy raw profile read as each function's share of the samples."""
from bench.spy_top import frame_name, shares

RAW = [
    "run (threading.py:975);call_service (/srv/app/cds_service/hooks.py:52);loads (/srv/app/cds_service/json_codec.py:46) 3\n",
    "run (threading.py:975);call_service (/srv/app/cds_service/hooks.py:60) 1\n",
    " 5\n",                                   # a sample py-spy could not read a stack for
]


def test_a_frame_is_named_by_function_and_the_last_two_parts_of_its_path():
    assert frame_name("call_service (/srv/app/cds_service/hooks.py:52)") == "call_service (cds_service/hooks.py)"


def test_lines_of_one_function_count_as_one_row():
    total, inclusive, _ = shares(RAW)
    assert total == 4 and inclusive["call_service (cds_service/hooks.py)"] == 4


def test_self_samples_go_to_the_innermost_frame_only():
    _, inclusive, own = shares(RAW)
    assert own == {"loads (cds_service/json_codec.py)": 3, "call_service (cds_service/hooks.py)": 1}
    assert inclusive["loads (cds_service/json_codec.py)"] == 3
