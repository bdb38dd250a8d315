"""How the benchmarks measure: a device's name, the median time of a step, the peak memory one step
adds, and an out-of-memory error told from a bug."""

import platform
import statistics
import time
from typing import Callable, Sequence, Tuple

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (what ``lscpu`` shows), e.g. "AMD EPYC"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, the CPU allocator's refusal, or Python's MemoryError."""
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and ("out of memory" in str(error) or "can't allocate memory" in str(error)))


def median_time_ms(step: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    """The median milliseconds of ``repeats`` steps after ``warmup`` (CUDA events on a GPU)."""
    for _ in range(warmup):
        step()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def tracked_peak(step: Callable[[], None], device: torch.device, externals: Sequence) -> Tuple[int, int]:
    """(peak tensor memory during one step, the part of it the step added), from PyTorch's own tracker
    of live tensor storage (``MemTracker``: the CPU has no allocator statistics). ``externals`` are the
    modules, optimizers and tensors alive before the step."""
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    tracker.track_external(*externals)
    with tracker:
        before = tracker.get_tracker_snapshot("current")[device]["Total"]
        step()
    peak = tracker.get_tracker_snapshot("peak")[device]["Total"]
    return peak, peak - before


def peak_step_memory_bytes(step: Callable[[], None], device: torch.device, layer: torch.nn.Module,
                           x: torch.Tensor) -> int:
    """Peak memory one step allocates on top of what is live before it (weights, input)."""
    layer.zero_grad(set_to_none=True)  # gradients of earlier steps are not "live before" this one
    x.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return tracked_peak(step, device, [layer, x])[1]
