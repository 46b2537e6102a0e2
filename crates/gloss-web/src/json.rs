//! Protobuf messages as the browser sees them: the proto3 JSON mapping with the proto's own
//! (snake_case) field names, every field present, 64-bit integers as numbers and enums by name.
//! One codec for every message, driven by the descriptor set the gRPC reflection service uses,
//! so the web API and the gRPC API can never disagree on a field.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};
use serde_json::Value;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(gloss_proto::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes")
    })
}

/// The descriptor of the generated type `M` (a `gloss.v1` message).
fn descriptor<M>() -> MessageDescriptor {
    let short = std::any::type_name::<M>()
        .rsplit("::")
        .next()
        .expect("type names are never empty");
    pool()
        .get_message_by_name(&format!("gloss.v1.{short}"))
        .unwrap_or_else(|| panic!("gloss.v1.{short} is not in the descriptor set"))
}

/// A message as JSON.
pub fn to_json<M: Message>(m: &M) -> Value {
    let dynamic = DynamicMessage::decode(descriptor::<M>(), m.encode_to_vec().as_slice())
        .expect("a message decodes as its own type");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("serialising to a JSON value cannot fail")
}

/// A message from JSON; unknown fields are an error that names them.
pub fn from_json<M: Message + Default>(v: Value) -> Result<M, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let dynamic = DynamicMessage::deserialize_with_options(descriptor::<M>(), v, &options)
        .map_err(|e| e.to_string())?;
    M::decode(dynamic.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use gloss_proto::v1::{Answer, Decision, Span};
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_round_trip_with_snake_case_names_and_numbers() {
        let a = Answer {
            answer_id: "a1".into(),
            seq: 12,
            decision: Decision::Accept as i32,
            spans: vec![Span {
                start: 0,
                end: 4,
                label: "ORG".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = to_json(&a);
        assert_eq!(v["answer_id"], "a1");
        assert_eq!(v["seq"], 12);
        assert_eq!(v["decision"], "DECISION_ACCEPT");
        assert_eq!(v["choices"], json!([]));
        assert_eq!(v["spans"][0]["label"], "ORG");
        let back: Answer = from_json(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = from_json::<Answer>(json!({"answer_id": "x", "chioces": ["A"]})).unwrap_err();
        assert!(err.contains("chioces"), "{err}");
    }
}
