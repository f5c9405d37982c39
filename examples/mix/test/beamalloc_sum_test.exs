defmodule BeamallocSumTest do
  use ExUnit.Case

  test "sum decodes the list into the call's allocator and frees it" do
    assert BeamallocSum.sum([1.5, 2.5, 3]) == 7.0
    assert BeamallocSum.sum([]) == 0.0
  end

  test "a bad list is a badarg and leaks nothing" do
    assert_raise ArgumentError, fn -> BeamallocSum.sum([1, :two, 3]) end
  end

  test "the leaking NIF raises memory_leak with what it leaked" do
    err = assert_raise ErlangError, fn -> BeamallocSum.leaky_sum([1.5, 2.5, 3]) end

    assert {:memory_leak, msg, %{function: "leaky_sum/1", bytes: 24, blocks: 1}} =
             err.original

    assert msg == "memory leak detected in function leaky_sum/1: 24 bytes in 1 block"
  end
end
