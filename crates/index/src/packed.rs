//! The store's objects packed: the objects of one key in one buffer,
//! decoded when read. A cluster's services and slices are most of what the
//! store keeps besides its pods; typed, each is a dozen allocations (its
//! strings, ports, labels, addresses), packed it is one.
//!
//! A buffer holds a count, then each object as: the number of its origin's
//! file (0: none; the file's name is kept once, in [`Files`]), the Service
//! it belongs to when it is a slice (empty otherwise; read without
//! decoding the slice, to find a service's slices), and the object itself
//! (postcard), each after its length. Equal objects pack to equal bytes, so
//! packed values compare as the objects do.

use std::sync::Arc;

use svcnet_model::varint::{put_prefixed, put_varint, take_prefixed, take_varint};
use svcnet_model::{EndpointSlice, Object, Service};

use crate::numbered::Numbered;

/// The origin files of a store's objects, each kept once and numbered: an
/// object's number names the same file as long as the store lives.
pub(crate) type Files = Numbered<Arc<str>>;

/// The objects of one key (nearly always one; an Endpoints object's
/// subsets are several slices). The bytes are shared: a replacement that
/// brings an object as the store holds it keeps the store's copy (see
/// [`Packed::shared_if_equal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Packed {
    Bytes(Arc<[u8]>),
    /// Objects the packing refused (none known; kept whole rather than
    /// lost).
    Whole(Box<[Object]>),
}

/// One packed object, not yet decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<'a> {
    file: u32,
    /// The Service a slice belongs to (empty for other objects).
    pub(crate) service: &'a str,
    body: Body<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    Bytes(&'a [u8]),
    Whole(&'a Object),
}

/// The Service a slice belongs to; empty for other objects.
fn service_of(obj: &Object) -> &str {
    match obj {
        Object::EndpointSlice { slice, .. } => slice.service.as_str(),
        _ => "",
    }
}

impl Packed {
    /// Packs `objects`, numbering their files in `files`.
    pub(crate) fn pack(mut objects: Vec<Object>, files: &mut Files) -> Self {
        let mut buf = Vec::new();
        put_varint(&mut buf, objects.len());
        let none: Arc<str> = Arc::from("");
        for obj in &mut objects {
            let origin = obj.meta_mut().origin.as_mut();
            let file = origin.map_or(0, |o| {
                // Past 4 G files the name stays in the object.
                let n = files.number(&o.file).unwrap_or(0);
                if n != 0 {
                    o.file = none.clone();
                }
                n
            });
            let body = postcard::to_allocvec(&*obj);
            if let Some(o) = obj.meta_mut().origin.as_mut()
                && let Some(name) = files.name(file)
            {
                o.file = name.clone();
            }
            let Ok(body) = body else {
                return Self::Whole(objects.into_boxed_slice());
            };
            put_varint(&mut buf, file as usize);
            put_prefixed(&mut buf, service_of(obj).as_bytes());
            put_prefixed(&mut buf, &body);
        }
        Self::Bytes(buf.into())
    }

    /// `old`'s bytes in place of these when they are the same: a relist
    /// of a large cluster would otherwise hold each unchanged object twice
    /// until it ends.
    pub(crate) fn shared_if_equal(self, old: Option<&Self>) -> Self {
        match old {
            Some(old @ Self::Bytes(_)) if *old == self => old.clone(),
            _ => self,
        }
    }

    /// How many objects there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => take_varint(&mut &b[..]).unwrap_or(0),
            Self::Whole(objects) => objects.len(),
        }
    }

    /// The objects, in order, not yet decoded.
    pub(crate) fn raw(&self) -> Box<dyn Iterator<Item = Raw<'_>> + '_> {
        match self {
            Self::Bytes(b) => {
                let mut buf: &[u8] = b;
                let n = take_varint(&mut buf).unwrap_or(0);
                Box::new((0..n).map_while(move |_| {
                    let file = u32::try_from(take_varint(&mut buf)?).ok()?;
                    let service = std::str::from_utf8(take_prefixed(&mut buf)?).ok()?;
                    let body = Body::Bytes(take_prefixed(&mut buf)?);
                    Some(Raw {
                        file,
                        service,
                        body,
                    })
                }))
            }
            Self::Whole(objects) => Box::new(objects.iter().map(|o| Raw {
                file: 0,
                service: service_of(o),
                body: Body::Whole(o),
            })),
        }
    }

    /// The objects, decoded.
    pub(crate) fn objects(&self, files: &Files) -> Vec<Object> {
        self.raw().filter_map(|r| r.decode(files)).collect()
    }

    /// The Service among the objects.
    pub(crate) fn service(&self, files: &Files) -> Option<Service> {
        self.raw()
            .filter(|r| r.service.is_empty())
            .find_map(|r| r.decode_service(files))
    }

    /// The slices among the objects that belong to Service `name`.
    pub(crate) fn slices_of(&self, name: &str, files: &Files) -> Vec<EndpointSlice> {
        self.raw()
            .filter(|r| r.service == name)
            .filter_map(|r| r.decode_slice(files))
            .collect()
    }
}

impl Raw<'_> {
    /// The object, with its origin's file.
    pub(crate) fn decode(&self, files: &Files) -> Option<Object> {
        match self.body {
            Body::Bytes(bytes) => {
                let mut obj: Object = postcard::from_bytes(bytes).ok()?;
                if let (Some(origin), Some(file)) =
                    (obj.meta_mut().origin.as_mut(), files.name(self.file))
                {
                    origin.file = file.clone();
                }
                Some(obj)
            }
            Body::Whole(obj) => Some(obj.clone()),
        }
    }

    /// The object if it is a slice.
    pub(crate) fn decode_slice(&self, files: &Files) -> Option<EndpointSlice> {
        match self.decode(files)? {
            Object::EndpointSlice { slice, .. } => Some(slice),
            _ => None,
        }
    }

    /// The object if it is a Service.
    pub(crate) fn decode_service(&self, files: &Files) -> Option<Service> {
        match self.decode(files)? {
            Object::Service(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_model::{Endpoint, EndpointPort, Endpoints, Labels, Meta, Origin, Protocol};

    fn meta(name: &str, file: Option<&Arc<str>>) -> Meta {
        Meta {
            namespace: "ns".to_owned(),
            name: name.to_owned(),
            labels: Labels::from([("app", name)]),
            origin: file.map(|f| Origin {
                file: f.clone(),
                line: 3,
                column: 1,
            }),
        }
    }

    fn slice(name: &str, service: &str, file: Option<&Arc<str>>) -> Object {
        Object::EndpointSlice {
            slice: EndpointSlice {
                meta: meta(name, file),
                service: service.to_owned(),
                ports: vec![EndpointPort {
                    name: Some("http".to_owned()),
                    protocol: Protocol::Tcp,
                    port: 80,
                }],
                endpoints: Endpoints::from(vec![Endpoint {
                    addresses: [std::net::IpAddr::from([10, 0, 0, 1])].into(),
                    hostname: Some("h".into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                    pod: Some("p".into()),
                    node: Some(Arc::from("n")),
                }]),
            },
            from_endpoints: true,
        }
    }

    #[test]
    fn an_equal_packing_shares_the_older_bytes() {
        let mut files = Files::default();
        let bytes = |p: &Packed| match p {
            Packed::Bytes(b) => Some(Arc::clone(b)),
            Packed::Whole(_) => None,
        };
        let old = Packed::pack(vec![slice("s0", "web", None)], &mut files);
        let same = Packed::pack(vec![slice("s0", "web", None)], &mut files);
        let other = Packed::pack(vec![slice("s0", "db", None)], &mut files);
        let (Some(old_bytes), Some(same_bytes)) = (bytes(&old), bytes(&same)) else {
            panic!("packed as bytes");
        };
        assert!(!Arc::ptr_eq(&old_bytes, &same_bytes));
        let shared = same.shared_if_equal(Some(&old));
        assert!(bytes(&shared).is_some_and(|b| Arc::ptr_eq(&b, &old_bytes)));
        let kept = other.clone().shared_if_equal(Some(&old));
        assert_eq!(kept, other);
        assert!(bytes(&kept).is_some_and(|b| !Arc::ptr_eq(&b, &old_bytes)));
        assert_eq!(other.clone().shared_if_equal(None), other);
    }

    #[test]
    fn objects_read_back_as_packed_with_their_files() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a.yaml"), Arc::from("b.yaml"));
        let mut files = Files::default();
        let objects = vec![
            slice("s0", "web", Some(&a)),
            slice("s1", "db", Some(&b)),
            slice("s2", "web", None),
        ];
        let packed = Packed::pack(objects.clone(), &mut files);
        assert!(matches!(packed, Packed::Bytes(_)));
        assert_eq!(packed.len(), 3);
        assert_eq!(packed.objects(&files), objects);
        // Each file's name kept once, the objects naming it by number.
        assert_eq!(files.len(), 2);
        assert_eq!((files.name(1), files.name(2)), (Some(&a), Some(&b)));
        let services: Vec<&str> = packed.raw().map(|r| r.service).collect();
        assert_eq!(services, ["web", "db", "web"]);
        let web = packed.slices_of("web", &files);
        assert_eq!(web.len(), 2);
        assert_eq!(web[1].meta.origin, None);
        assert!(packed.service(&files).is_none());
        // Equal objects pack equal; a changed one does not.
        assert_eq!(Packed::pack(objects.clone(), &mut files), packed);
        let mut other = objects;
        other[0].meta_mut().labels = Labels::from([("app", "other")]);
        assert_ne!(Packed::pack(other, &mut files), packed);
        // A Service reads back as one.
        let svc = Object::Service(Service {
            meta: meta("web", Some(&b)),
            service_type: svcnet_model::ServiceType::ClusterIp,
            address: svcnet_model::ServiceAddress::Headless,
            ports: Vec::new(),
            selector: Some(Labels::from([("app", "web")])),
            publish_not_ready: false,
        });
        let packed = Packed::pack(vec![svc.clone()], &mut files);
        assert_eq!(packed.service(&files).map(Object::Service), Some(svc));
        assert_eq!(files.len(), 2);
    }
}
