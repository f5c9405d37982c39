# mix.exs - a NIF built by `make -C c_src` (the :beamalloc_nif compiler
# below, run before Elixir's own) into priv/, with libbeamalloc linked in
# through pkg-config beamalloc-nif.  No dependencies.
defmodule Mix.Tasks.Compile.BeamallocNif do
  @moduledoc "Runs make in c_src/, which builds priv/beamalloc_sum_nif.so."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    case System.cmd("make", ["-C", "c_src"], stderr_to_stdout: true) do
      {out, 0} ->
        Mix.shell().info(out)
        # Mix links _build/.../priv before compilers run, and only if
        # priv/ exists: on a first build make has only now made it.
        Mix.Project.build_structure()
        {:ok, []}

      {out, status} ->
        Mix.shell().error(out)
        Mix.raise("make -C c_src failed with status #{status}")
    end
  end

  @impl true
  def clean, do: System.cmd("make", ["-C", "c_src", "clean"])
end

defmodule BeamallocSum.MixProject do
  use Mix.Project

  def project do
    [
      app: :beamalloc_sum,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:beamalloc_nif] ++ Mix.compilers(),
      deps: []
    ]
  end

  def application, do: [extra_applications: []]
end
