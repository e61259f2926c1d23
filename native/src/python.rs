//! The `pytvix_bao` Python module (see pytvix_bao.pyi for the documented API).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{Threads, GROUP_CHUNKS};

/// Inputs at least this long are hashed with the GIL released.
const DETACH_MIN: usize = 16 * 1024;

/// `max_threads` value meaning one thread per CPU (as in the blake3 package).
const AUTO: i64 = -1;

/// A C-contiguous buffer (bytes, bytearray, memoryview, mmap...) of `obj`.
fn contiguous(obj: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    let buf = PyUntypedBuffer::get(obj)?;
    if !buf.is_c_contiguous() {
        return Err(PyBufferError::new_err("buffer is not C-contiguous"));
    }
    Ok(buf)
}

/// The bytes of a buffer from `contiguous`, valid while it lives.
fn bytes_of(buf: &PyUntypedBuffer) -> &[u8] {
    let len = buf.len_bytes();
    if len == 0 {
        return &[];
    }
    // SAFETY: the exported buffer stays valid (and cannot be resized) until `buf` is
    // dropped, which the returned slice's lifetime ties it to; we only read it.
    unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, len) }
}

/// Run `f` on the bytes of any C-contiguous buffer, with the GIL released if `detach` and
/// the buffer is large.
fn with_buffer<T: Send>(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    detach: bool,
    f: impl FnOnce(&[u8]) -> T + Send,
) -> PyResult<T> {
    let buf = contiguous(obj)?;
    let data = bytes_of(&buf);
    Ok(if detach && data.len() >= DETACH_MIN {
        py.detach(|| f(data))
    } else {
        f(data)
    })
}

fn cv32(py: Python<'_>, obj: &Bound<'_, PyAny>, name: &str) -> PyResult<[u8; 32]> {
    with_buffer(py, obj, false, |b| <[u8; 32]>::try_from(b))?
        .map_err(|_| PyValueError::new_err(format!("{name} must be 32 bytes")))
}

fn check_subtree(len: usize, start_chunk: u64, is_root: bool) -> PyResult<()> {
    match crate::subtree_error(len, start_chunk, is_root) {
        Some(msg) => Err(PyValueError::new_err(msg)),
        None => Ok(()),
    }
}

/// The rayon pool for `max_threads`: rayon's global one for AUTO, else one per count.
fn threads(max_threads: i64) -> PyResult<Threads> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    match max_threads {
        1 => Ok(Threads::Current),
        AUTO => Ok(Threads::Pool(None)),
        n if n > 1 => {
            let n = n as usize;
            let mut pools = POOLS.get_or_init(Default::default).lock().unwrap();
            if let Some(pool) = pools.get(&n) {
                return Ok(Threads::Pool(Some(pool.clone())));
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            let pool = Arc::new(pool);
            pools.insert(n, pool.clone());
            Ok(Threads::Pool(Some(pool)))
        }
        _ => Err(PyValueError::new_err("max_threads must be >= 1 or AUTO")),
    }
}

fn result<'py>(
    py: Python<'py>,
    (root, ob): ([u8; 32], Vec<u8>),
) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
    (PyBytes::new(py, &root), PyBytes::new(py, &ob))
}

#[pyclass(module = "pytvix_bao")]
struct OutboardHasher(crate::OutboardHasher);

#[pymethods]
impl OutboardHasher {
    #[new]
    #[pyo3(signature = (*, max_threads = 1))]
    fn new(max_threads: i64) -> PyResult<Self> {
        Ok(Self(crate::OutboardHasher::new(threads(max_threads)?)))
    }

    fn update(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let hasher = &mut self.0;
        with_buffer(py, data, true, |b| hasher.update(b))
    }

    fn finalize<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        result(py, self.0.finalize())
    }

    fn __len__(&self) -> usize {
        self.0.len() as usize
    }
}

#[pyfunction]
#[pyo3(signature = (data, *, max_threads = 1))]
fn outboard<'py>(
    py: Python<'py>,
    data: &Bound<'_, PyAny>,
    max_threads: i64,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let threads = threads(max_threads)?;
    Ok(result(
        py,
        with_buffer(py, data, true, |b| crate::outboard(b, threads))?,
    ))
}

#[pyfunction]
fn chunk_group_cv<'py>(
    py: Python<'py>,
    data: &Bound<'_, PyAny>,
    start_chunk: u64,
    is_root: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let cv = with_buffer(py, data, true, |b| {
        check_subtree(b.len(), start_chunk, is_root)?;
        Ok::<_, PyErr>(crate::subtree_hash(b, start_chunk, is_root))
    })??;
    Ok(PyBytes::new(py, &cv))
}

#[pyfunction]
fn parent_cv<'py>(
    py: Python<'py>,
    left: &Bound<'_, PyAny>,
    right: &Bound<'_, PyAny>,
    is_root: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let (l, r) = (cv32(py, left, "left")?, cv32(py, right, "right")?);
    Ok(PyBytes::new(py, &crate::parent_cv(&l, &r, is_root)))
}

#[pyfunction]
fn group_cvs<'py>(
    py: Python<'py>,
    data: &Bound<'_, PyAny>,
    start_chunk: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    if start_chunk % GROUP_CHUNKS != 0 {
        return Err(PyValueError::new_err(
            "start_chunk must be a multiple of 16",
        ));
    }
    check_subtree(1, start_chunk, false)?;
    let cvs = with_buffer(py, data, true, |b| crate::group_cvs(b, start_chunk))?;
    Ok(PyBytes::new(py, &cvs))
}

/// A new bytes object of `len` bytes filled by `fill` (with the GIL released if large);
/// ValueError with `fill`'s error.
fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), crate::SubtreeError> + Send,
) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, len, |out| {
        let done = if len >= DETACH_MIN {
            py.detach(|| fill(out))
        } else {
            fill(out)
        };
        done.map_err(|e| PyValueError::new_err(e.to_string()))
    })
}

#[pyfunction]
fn decode_subtree<'py>(
    py: Python<'py>,
    encoded: &Bound<'_, PyAny>,
    expected: &Bound<'_, PyAny>,
    is_root: bool,
    start_chunk: u64,
    length: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    check_subtree(length, start_chunk, is_root)?;
    let expected = cv32(py, expected, "expected")?;
    let buf = contiguous(encoded)?;
    let encoded = bytes_of(&buf);
    new_bytes(py, length, |out| {
        crate::decode_subtree(encoded, &expected, is_root, start_chunk, out)
    })
}

#[pyfunction]
fn encode_subtree<'py>(
    py: Python<'py>,
    pairs: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    expected: &Bound<'_, PyAny>,
    is_root: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let expected = cv32(py, expected, "expected")?;
    let (pairs_buf, data_buf) = (contiguous(pairs)?, contiguous(data)?);
    let (pairs, data) = (bytes_of(&pairs_buf), bytes_of(&data_buf));
    let len = pairs.len() + data.len();
    new_bytes(py, len, |out| {
        crate::encode_subtree(pairs, data, &expected, is_root, out)
    })
}

#[pyfunction]
fn subtree_encoded_len(length: usize) -> usize {
    crate::subtree_encoded_len(length)
}

#[pyfunction]
fn outboard_size(size: u64) -> u64 {
    crate::outboard_size(size)
}

#[pymodule]
fn pytvix_bao(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<OutboardHasher>()?;
    m.add_function(wrap_pyfunction!(outboard, m)?)?;
    m.add_function(wrap_pyfunction!(chunk_group_cv, m)?)?;
    m.add_function(wrap_pyfunction!(parent_cv, m)?)?;
    m.add_function(wrap_pyfunction!(group_cvs, m)?)?;
    m.add_function(wrap_pyfunction!(outboard_size, m)?)?;
    m.add_function(wrap_pyfunction!(decode_subtree, m)?)?;
    m.add_function(wrap_pyfunction!(encode_subtree, m)?)?;
    m.add_function(wrap_pyfunction!(subtree_encoded_len, m)?)?;
    m.add("AUTO", AUTO)?;
    m.add("CHUNK_LEN", crate::CHUNK_LEN)?;
    m.add("GROUP_LEN", crate::GROUP_LEN)?;
    Ok(())
}
