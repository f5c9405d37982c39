defmodule BeamallocSum do
  @moduledoc """
  Sums of numbers in a NIF (c_src/beamalloc_sum_nif.c) whose every call is
  leak-checked by libbeamalloc.
  """
  @on_load :load_nif

  @doc false
  def load_nif do
    :erlang.load_nif(Path.join(:code.priv_dir(:beamalloc_sum), "beamalloc_sum_nif"), 0)
  end

  @doc "The sum of a list of numbers, as a float."
  def sum(_numbers), do: :erlang.nif_error(:not_loaded)

  @doc "The same, from a NIF that leaks its array: raises ErlangError."
  def leaky_sum(_numbers), do: :erlang.nif_error(:not_loaded)
end
