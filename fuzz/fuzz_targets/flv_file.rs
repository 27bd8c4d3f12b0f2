//! FLV files and streams: the whole-file reader (fixtures, the slate) and the incremental
//! reader (a transcoder's output, fed as it arrives) must agree on every input. The first
//! byte picks the piece size the incremental reader is fed in (0 = all at once).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use motherstream_media::media::flv::{FlvReader, FlvStreamReader};

const MAX_TAG: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let piece = if piece == 0 { input.len().max(1) } else { usize::from(piece) };

    let mut whole = Vec::new();
    let whole_error = match FlvReader::with_max_tag_size(Bytes::copy_from_slice(input), MAX_TAG) {
        Ok(reader) => {
            let mut error = None;
            for tag in reader {
                match tag {
                    Ok(tag) => whole.push(tag),
                    Err(err) => error = Some(err),
                }
            }
            error
        }
        Err(err) => Some(err),
    };

    let mut streamed = Vec::new();
    let mut stream = FlvStreamReader::with_max_tag_size(MAX_TAG);
    let mut stream_error = None;
    'feed: for part in input.chunks(piece) {
        if let Err(err) = stream.feed(part) {
            stream_error = Some(err);
            break;
        }
        loop {
            match stream.next_tag() {
                Ok(Some(tag)) => streamed.push(tag),
                Ok(None) => break,
                Err(err) => {
                    stream_error = Some(err);
                    break 'feed;
                }
            }
        }
    }

    // The incremental reader may stop short on a truncated file (it waits for more), and
    // refuses to buffer more than one tag's worth; on everything it did read, they agree.
    let common = whole.len().min(streamed.len());
    assert_eq!(whole[..common], streamed[..common]);
    if whole_error.is_none() {
        assert!(stream_error.is_none(), "the incremental reader refused a valid file: {stream_error:?}");
        assert_eq!(whole.len(), streamed.len());
    }
    if stream_error.is_none() && whole_error.is_none() {
        assert_eq!(whole, streamed);
    }
});
